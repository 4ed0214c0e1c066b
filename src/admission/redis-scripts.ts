/**
 * The Lua script behind redis-store.ts: the arithmetic of bucket.ts, run atomically by
 * Redis (ioredis defineCommand: EVALSHA, falling back to EVAL after a restart forgot it).
 *
 * One script, APPLY, runs a batch of operations in order: reservations, adjustments and
 * syncs, each exactly as if it ran alone (an operation sees what the ones before it in
 * the batch did), all of the batch atomically. The store sends the operations of one
 * event-loop turn as one batch (redis-store.ts): one command, one script run, one HMGET
 * and one HSET per hash, however many calls it carries.
 *
 * The buckets of one caller key share a hash (`{aigw}:c:<key>`), as do those of one
 * model's organisation (`{aigw}:o:<upstream>:<model>`). A bucket is one field of its
 * hash, named as the bucket (`tokens_per_minute`), its value float64s, little-endian:
 *
 *   a caller's bucket        level, when it was measured (epoch ms, the caller's clock)
 *   the organisation's       level, when, capacity and refill/ms (learned from the
 *   (shared) buckets          upstream, win over the caller's), running total of
 *                             reservations (sync)
 *
 * Binary, not decimal text: Redis no longer parses (strtod) and prints (%.17g) every
 * number, nor looks up 2 to 5 fields a bucket in the hash's listpack. On this project's VM
 * (`INFO commandstats`, 2026-12-01) a lone call's batch with six buckets and the last
 * call's settlement went from 105-130 µs of Redis' time to ≈ 90, one with eleven buckets
 * from 210-240 to ≈ 110. To read one by hand:
 * `redis-cli --no-raw HGET '{aigw}:c:<key>' tokens_per_minute`, then unpack the bytes.
 *
 * A hash expires (PEXPIRE, only ever extended) once its written buckets would all be
 * full again, plus up to EXPIRY_MARGIN_MS (it is extended only when it would expire
 * before that), so Redis never fills with dead windows: a missing bucket is a full one.
 *
 * Numbers cross as binary: ARGV[1] is float64s, little-endian (struct.unpack, in C), and
 * so is the reply (struct.pack). On this project's VM Lua's tonumber of a 17-digit
 * decimal costs ≈ 0.5 µs, string.format('%.17g') ≈ 0.6 µs, cjson.decode of a small
 * batch ≈ 10-18 µs; unpacking 30 float64s costs ≈ 1 µs in all. Binary is also exact:
 * no decimal round trip on either side. The strings are separate arguments, made once
 * by the store: KEYS the hashes, ARGV[2…] the buckets' field names,
 * those of one hash side by side, so its HMGET is `unpack(ARGV, first, last)` with no
 * list to build. The state lives in flat arrays, not a table per bucket (a table with
 * named fields costs Lua a rehash each time it grows). Every bucket and every distinct
 * limit is named once per batch, however many operations use it. ARGV[1] holds:
 *
 *   nOps, opsLength, nKeys, nStates, nSpecs
 *   ops     kind, now, count, then count × (spec, value) — kind 1 reserve (value: the
 *           amount), 2 adjust (the amount) — or count × (spec, remaining, seq) — kind
 *           3 sync (seq: the reporting call's, -1 for none); opsLength numbers in all
 *   keys    first, last: the hash's field names in ARGV; one per KEYS entry
 *   states  hash (index in KEYS), shared (1|0), its field name's index in ARGV: one per
 *           bucket
 *   specs   state, capacity, refill/ms: one per BucketSpec
 *
 * The reply is float64s too, with something only for reservations, in order:
 *   admitted  1, then per bucket its level, and for a shared bucket its capacity and seq
 *   refused   0, the bucket (1-based), the wait in ms (-1: never fits), then per bucket
 *             its level, and for a shared bucket its capacity
 */
import { EXPIRY_MARGIN_MS } from "./bucket.js";

export const APPLY = `
local raw = ARGV[1]
local v = {struct.unpack('<' .. string.rep('d', #raw / 8), raw)}
local nOps, nKeys, nStates, nSpecs = v[1], v[3], v[4], v[5]
local at = 5 + v[2]

-- Every bucket's value: one HMGET per hash, of a run of ARGV.
local H, F = {}, {}
for k = 1, nKeys do
  F[k] = v[at + 1]
  H[k] = redis.call('HMGET', KEYS[k], unpack(ARGV, v[at + 1], v[at + 2]))
  at = at + 2
end
-- The buckets (states): hash, shared, field; existed, level, time; a shared one's
-- stored capacity, rate and running total; written, and the capacity and rate it was
-- written with (its expiry).
local SK, SH, SF, SX, SL, ST, SC, SR, SS, SW, SWC, SWR = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
for i = 1, nStates do
  local k, sh, f = v[at + 1], v[at + 2] == 1, v[at + 3]
  at = at + 3
  SK[i], SH[i], SF[i] = k, sh, f
  -- A bucket is one binary value: level and time, and for the organisation's (shared)
  -- buckets their capacity, rate and running total.
  local s = H[k][f - F[k] + 1]
  if not s then
    SX[i] = false
    if sh then SS[i] = 0 end
  elseif sh then
    SX[i] = true
    SL[i], ST[i], SC[i], SR[i], SS[i] = struct.unpack('<ddddd', s)
  else
    SX[i] = true
    SL[i], ST[i] = struct.unpack('<dd', s)
  end
end
-- The limits (specs): bucket, capacity, rate.
local PS, PC, PR = {}, {}, {}
for j = 1, nSpecs do
  PS[j], PC[j], PR[j] = v[at + 1], v[at + 2], v[at + 3]
  at = at + 3
end

-- Bucket i's level at now, refilled (never past capacity; time never runs backwards), with
-- the capacity and rate it counts with: a shared bucket's stored ones win over limit j's.
local function level(i, j, now)
  local c, r = PC[j], PR[j]
  if SH[i] and SC[i] then c, r = SC[i], SR[i] end
  if not SX[i] then return c, now, c, r end
  local l, t = SL[i], ST[i]
  if now > t then
    l = l + (now - t) * r
    t = now
  end
  if l > c then l = c end
  return l, t, c, r
end

local function put(i, l, t, c, r)
  SX[i], SL[i], ST[i], SW[i], SWC[i], SWR[i] = true, l, t, true, c, r
  if SH[i] then SC[i], SR[i] = c, r end
end

local out, L, T, C, R = {}, {}, {}, {}, {}
at = 6
for _ = 1, nOps do
  local kind, now, n = v[at], v[at + 1], v[at + 2]
  at = at + 3
  if kind == 1 then
    -- Reserve: every bucket's amount, or nothing.
    local refused, wait = 0, 0
    for j = 1, n do
      local p, a = v[at + 2 * j - 2], v[at + 2 * j - 1]
      local l, t, c, r = level(PS[p], p, now)
      L[j], T[j], C[j], R[j] = l, t, c, r
      if wait ~= -1 then
        if a > c then
          refused, wait = j, -1
        elseif a > l then
          local w = (a - l) / r
          if w > wait then refused, wait = j, w end
        end
      end
    end
    if refused > 0 then
      out[#out + 1] = 0
      out[#out + 1] = refused
      out[#out + 1] = wait
      for j = 1, n do
        out[#out + 1] = L[j]
        if SH[PS[v[at + 2 * j - 2]]] then out[#out + 1] = C[j] end
      end
    else
      out[#out + 1] = 1
      for j = 1, n do
        local i, a = PS[v[at + 2 * j - 2]], v[at + 2 * j - 1]
        local l = L[j] - a
        put(i, l, T[j], C[j], R[j])
        out[#out + 1] = l
        if SH[i] then
          SS[i] = SS[i] + a
          out[#out + 1] = C[j]
          out[#out + 1] = SS[i]
        end
      end
    end
    at = at + 2 * n
  elseif kind == 2 then
    -- Adjust: give back (amount > 0) or take more (amount < 0), never past capacity; a
    -- missing (full) bucket ignores a refund.
    for _ = 1, n do
      local p, a = v[at], v[at + 1]
      at = at + 2
      local i = PS[p]
      if SX[i] or a < 0 then
        local l, t, c, r = level(i, p, now)
        l = l + a
        if l > c then l = c end
        put(i, l, t, c, r)
      end
    end
  else
    -- Sync: lower a shared bucket to the upstream's report (limit p is the report's
    -- capacity and rate): level := min(level now, remaining - reservations made since
    -- the reporting call's own). A report never raises it.
    for _ = 1, n do
      local p, remaining, seqAt = v[at], v[at + 1], v[at + 2]
      at = at + 3
      local i = PS[p]
      local current, t = level(i, p, now)
      local c, r = PC[p], PR[p]
      if current > c then current = c end
      local since = 0
      if seqAt >= 0 and SS[i] > seqAt then since = SS[i] - seqAt end
      local l = remaining - since
      if l > current then l = current end
      put(i, l, t, c, r)
    end
  end
end

-- Write what changed: one HSET per hash, and extend each hash's expiry to when its
-- written buckets are full again.
local args, ttl = {}, {}
for i = 1, nStates do
  if SW[i] then
    local k, f = SK[i], SF[i]
    local list = args[k]
    if list == nil then list = {}; args[k] = list end
    local m = #list
    if SH[i] then
      list[m + 1], list[m + 2] = ARGV[f], struct.pack('<ddddd', SL[i], ST[i], SC[i], SR[i], SS[i])
    else
      list[m + 1], list[m + 2] = ARGV[f], struct.pack('<dd', SL[i], ST[i])
    end
    local full = 0
    if SL[i] < SWC[i] then full = (SWC[i] - SL[i]) / SWR[i] end
    local ms = math.ceil(full) + ${EXPIRY_MARGIN_MS}
    if ttl[k] == nil or ms > ttl[k] then ttl[k] = ms end
  end
end
for k, list in pairs(args) do
  redis.call('HSET', KEYS[k], unpack(list))
  -- Extended (to full + margin) only once the expiry would come before full: a busy hash
  -- pays one PEXPIRE per margin, not one per batch.
  if redis.call('PTTL', KEYS[k]) < ttl[k] - ${EXPIRY_MARGIN_MS} then redis.call('PEXPIRE', KEYS[k], ttl[k]) end
end
if #out == 0 then return '' end
return struct.pack('<' .. string.rep('d', #out), unpack(out))
`;
