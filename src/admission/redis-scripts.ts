/**
 * The Lua scripts behind redis-store.ts: the arithmetic of bucket.ts, run atomically by
 * Redis over every bucket a call touches (ioredis defineCommand: EVALSHA, falling back
 * to EVAL after a restart forgot the script).
 *
 * The buckets of one caller key share a hash (`{aigw}:c:<key>`), as do those of one
 * model's organisation (`{aigw}:o:<upstream>:<model>`), so a call's reservation is one
 * HMGET and one HSET per hash, not per limit. A bucket is fields of its hash, named
 * `<bucket>:<field>`:
 *
 *   l  level (float, %.17g)     t  when l was measured (epoch ms from the caller's clock)
 *   and, for the organisation's (shared) buckets only:
 *   c  capacity  r  refill/ms   (learned from the upstream, win over ARGV)
 *   s  running total of reservations (sync)
 *
 * A hash expires (PEXPIRE, only ever extended) once its buckets would all be full again,
 * so Redis never fills with dead windows: a missing bucket is a full one.
 *
 * ARGV[1] is now, ARGV[2] the number of buckets; then six arguments per bucket: the index
 * of its hash in KEYS, its name, amount (remaining for SYNC), capacity, rate, shared (1|0;
 * SYNC: the reporting call's seq, -1 for none). Numbers go back to the caller as strings:
 * Lua numbers become integers in replies.
 */
import { EXPIRY_MARGIN_MS } from "./bucket.js";

/** Reads every bucket's fields (one HMGET per hash) and refills them to now. */
const LOAD = `
-- SYNCING (set before this): every bucket is shared, and its last argument is a seq, not a flag.
local function num(x) return string.format('%.17g', x) end
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local K, NAME, A, L, T, C, R, S, EXISTED = {}, {}, {}, {}, {}, {}, {}, {}, {}
local fields, offset = {}, {}
for i = 1, n do
  local a = 3 + (i - 1) * 6
  local k = tonumber(ARGV[a])
  K[i], NAME[i], A[i] = k, ARGV[a + 1], tonumber(ARGV[a + 2])
  local list = fields[k]
  if list == nil then list = {}; fields[k] = list end
  offset[i] = #list
  local p = NAME[i] .. ':'
  -- A caller's bucket is only a level and a time; the organisation's also carry c, r, s.
  list[#list + 1] = p .. 'l'
  list[#list + 1] = p .. 't'
  if SYNCING or ARGV[a + 5] == '1' then
    list[#list + 1] = p .. 'c'
    list[#list + 1] = p .. 'r'
    list[#list + 1] = p .. 's'
  end
end
local values = {}
for k, list in pairs(fields) do values[k] = redis.call('HMGET', KEYS[k], unpack(list)) end
for i = 1, n do
  local a = 3 + (i - 1) * 6
  local h, o = values[K[i]], offset[i]
  local c, r = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  -- Only a shared bucket read c, r, s (offsets past l, t belong to the next bucket otherwise).
  local sh = SYNCING or ARGV[a + 5] == '1'
  if sh and h[o + 3] then
    c = tonumber(h[o + 3])
    r = tonumber(h[o + 4])
  end
  local l, t = c, now
  if h[o + 1] then
    l = tonumber(h[o + 1])
    t = tonumber(h[o + 2])
    if now > t then l = l + (now - t) * r end
    if l > c then l = c end
    if now > t then t = now end
  end
  local s = 0
  if sh and h[o + 5] then s = tonumber(h[o + 5]) end
  L[i], T[i], C[i], R[i], S[i], EXISTED[i] = l, t, c, r, s, h[o + 1] ~= false
end
-- Writes the buckets marked in W (one HSET per hash), and extends each hash's expiry to
-- when its written buckets are full again.
local function store(W)
  local args, ttl = {}, {}
  for i = 1, n do
    if W[i] then
      local k = K[i]
      local list = args[k]
      if list == nil then list = {}; args[k] = list end
      local p = NAME[i] .. ':'
      list[#list + 1] = p .. 'l'; list[#list + 1] = num(L[i])
      list[#list + 1] = p .. 't'; list[#list + 1] = num(T[i])
      if W[i] == 'shared' then
        list[#list + 1] = p .. 's'; list[#list + 1] = num(S[i])
        list[#list + 1] = p .. 'c'; list[#list + 1] = num(C[i])
        list[#list + 1] = p .. 'r'; list[#list + 1] = num(R[i])
      end
      local full = 0
      if L[i] < C[i] then full = (C[i] - L[i]) / R[i] end
      local ms = math.ceil(full) + ${EXPIRY_MARGIN_MS}
      if ttl[k] == nil or ms > ttl[k] then ttl[k] = ms end
    end
  end
  for k, list in pairs(args) do
    redis.call('HSET', KEYS[k], unpack(list))
    if redis.call('PTTL', KEYS[k]) < ttl[k] then redis.call('PEXPIRE', KEYS[k], ttl[k]) end
  end
end
local function shared(i) return ARGV[3 + (i - 1) * 6 + 5] == '1' end
`;

/**
 * Reserve: every bucket's amount, or nothing.
 * Returns {1, level, capacity, seq, …} after taking, or {0, index (1-based), waitMs (-1:
 * never fits), level, capacity, …} with nothing taken.
 */
export const RESERVE = `local SYNCING = false
${LOAD}
local refused, wait = 0, 0
for i = 1, n do
  if wait ~= -1 then
    if A[i] > C[i] then
      refused, wait = i, -1
    elseif A[i] > L[i] then
      local w = (A[i] - L[i]) / R[i]
      if w > wait then refused, wait = i, w end
    end
  end
end
if refused > 0 then
  local out = {0, refused, num(wait)}
  for i = 1, n do
    out[#out + 1] = num(L[i])
    out[#out + 1] = num(C[i])
  end
  return out
end
local W, out = {}, {1}
for i = 1, n do
  L[i] = L[i] - A[i]
  S[i] = S[i] + A[i]
  if shared(i) then W[i] = 'shared' else W[i] = 'own' end
  out[#out + 1] = num(L[i])
  out[#out + 1] = num(C[i])
  out[#out + 1] = num(S[i])
end
store(W)
return out
`;

/** Adjust: give back (amount > 0) or take more (amount < 0), never past capacity; a missing (full) bucket ignores a refund. */
export const ADJUST = `local SYNCING = false
${LOAD}
local W = {}
for i = 1, n do
  if EXISTED[i] or A[i] < 0 then
    L[i] = L[i] + A[i]
    if L[i] > C[i] then L[i] = C[i] end
    if shared(i) then W[i] = 'shared' else W[i] = 'own' end
  end
end
store(W)
return 1
`;

/**
 * Lower shared buckets to the upstream's reports (amount: remaining; the last argument:
 * the seq at the reporting call's admission, -1 for none; capacity and rate are the
 * report's). Level := min(level now, remaining − reservations made since): a report never
 * raises it.
 */
export const SYNC = `local SYNCING = true
${LOAD}
local W = {}
for i = 1, n do
  local a = 3 + (i - 1) * 6
  -- The report's capacity and rate, not the stored ones: the upstream just said so.
  local c, r = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local seqAt = tonumber(ARGV[a + 5])
  local current = L[i]
  if current > c then current = c end
  local since = 0
  if seqAt >= 0 and S[i] > seqAt then since = S[i] - seqAt end
  local l = A[i] - since
  if l > current then l = current end
  L[i], C[i], R[i] = l, c, r
  W[i] = 'shared'
end
store(W)
return 1
`;
