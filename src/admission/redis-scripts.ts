/**
 * The Lua scripts behind redis-store.ts: the arithmetic of bucket.ts, run atomically by
 * Redis over every bucket a call touches (ioredis defineCommand: EVALSHA, falling back
 * to EVAL after a restart forgot the script). A bucket is a hash:
 *
 *   l  level (float, %.17g)     t  when l was measured (epoch ms from the caller's clock)
 *   c  capacity  r  refill/ms   (shared buckets: learned from the upstream, win over ARGV)
 *   s  running total of reservations (shared buckets: sync)
 *
 * and expires (PEXPIRE) once it would be full again, so Redis never fills with dead
 * windows: a missing bucket is a full one.
 *
 * Per-bucket arguments come in fours after ARGV[1] (now): amount, capacity, rate, shared (1|0).
 * Numbers go back to the caller as strings: Lua numbers become integers in replies.
 */
import { EXPIRY_MARGIN_MS } from "./bucket.js";

const LOAD = `
local function num(x) return string.format('%.17g', x) end
local function load(key, a, now)
  local c = tonumber(ARGV[a + 2])
  local r = tonumber(ARGV[a + 3])
  local h = redis.call('HMGET', key, 'l', 't', 'c', 'r', 's')
  if ARGV[a + 4] == '1' and h[3] then
    c = tonumber(h[3])
    r = tonumber(h[4])
  end
  local l = c
  local t = now
  if h[1] then
    l = tonumber(h[1])
    t = tonumber(h[2])
    if now > t then l = l + (now - t) * r end
    if l > c then l = c end
    if now > t then t = now end
  end
  return l, t, c, r, tonumber(h[5] or '0'), h[1] ~= false
end
local function store(key, l, t, c, r, s, shared)
  if shared then
    redis.call('HSET', key, 'l', num(l), 't', num(t), 'c', num(c), 'r', num(r), 's', num(s))
  else
    redis.call('HSET', key, 'l', num(l), 't', num(t), 's', num(s))
  end
  local full = 0
  if l < c then full = (c - l) / r end
  redis.call('PEXPIRE', key, math.ceil(full) + ${EXPIRY_MARGIN_MS})
end
`;

/**
 * Reserve: every bucket's amount, or nothing.
 * Returns {1, level, capacity, seq, …} after taking, or {0, index (1-based), waitMs (-1:
 * never fits), level, capacity, …} with nothing taken.
 */
export const RESERVE = `${LOAD}
local now = tonumber(ARGV[1])
local n = #KEYS
local L, T, C, R, S = {}, {}, {}, {}, {}
local refused, wait = 0, 0
for i = 1, n do
  local a = 1 + (i - 1) * 4
  local cost = tonumber(ARGV[a + 1])
  L[i], T[i], C[i], R[i], S[i] = load(KEYS[i], a, now)
  if wait ~= -1 then
    if cost > C[i] then
      refused, wait = i, -1
    elseif cost > L[i] then
      local w = (cost - L[i]) / R[i]
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
local out = {1}
for i = 1, n do
  local a = 1 + (i - 1) * 4
  local cost = tonumber(ARGV[a + 1])
  local l = L[i] - cost
  local s = S[i] + cost
  store(KEYS[i], l, T[i], C[i], R[i], s, ARGV[a + 4] == '1')
  out[#out + 1] = num(l)
  out[#out + 1] = num(C[i])
  out[#out + 1] = num(s)
end
return out
`;

/** Adjust: give back (amount > 0) or take more (amount < 0), never past capacity; a missing (full) bucket ignores a refund. */
export const ADJUST = `${LOAD}
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 4
  local amount = tonumber(ARGV[a + 1])
  local l, t, c, r, s, existed = load(KEYS[i], a, now)
  if existed or amount < 0 then
    l = l + amount
    if l > c then l = c end
    store(KEYS[i], l, t, c, r, s, ARGV[a + 4] == '1')
  end
end
return 1
`;

/**
 * Lower shared buckets to the upstream's reports: ARGV now, then per bucket capacity,
 * rate, remaining, seq at the reporting call's admission (-1: none).
 * Level := min(level now, remaining − reservations made since): a report never raises it.
 */
export const SYNC = `
local function num(x) return string.format('%.17g', x) end
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 4
  local c = tonumber(ARGV[a])
  local r = tonumber(ARGV[a + 1])
  local remaining = tonumber(ARGV[a + 2])
  local seqAt = tonumber(ARGV[a + 3])
  local h = redis.call('HMGET', KEYS[i], 't', 's', 'l')
  local s = tonumber(h[2] or '0')
  local t = now
  local current = c
  if h[1] then
    local at = tonumber(h[1])
    current = tonumber(h[3])
    if now > at then current = current + (now - at) * r end
    if current > c then current = c end
    if at > now then t = at end
  end
  local since = 0
  if seqAt >= 0 and s > seqAt then since = s - seqAt end
  local l = remaining - since
  if l > current then l = current end
  redis.call('HSET', KEYS[i], 'l', num(l), 't', num(t), 'c', num(c), 'r', num(r), 's', num(s))
  local full = 0
  if l < c then full = (c - l) / r end
  redis.call('PEXPIRE', KEYS[i], math.ceil(full) + ${EXPIRY_MARGIN_MS})
end
return 1
`;
