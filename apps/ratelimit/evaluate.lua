-- Every limit of one request, and its failed-attempt reservations, in one atomic call.
--
-- Rate rules are GCRA (the generic cell rate algorithm, ITU-T I.371): one "theoretical arrival
-- time" per key, O(1) memory, a sliding window without buckets. A request is allowed when
-- tat + interval - burst * interval <= now. All rules are read first; only when every rule
-- allows does any key advance (a refused request costs no other rule its quota).
-- A refusal outside a penalty counts one violation (decaying by one per period); with backoff
-- the key is then blocked for base * v (linear) or base * multiplier^(v-1) (exponential),
-- capped. A refused key reports `notify` once per window: one event per key and window.
--
-- Counters (lockout) reserve an attempt before the secret is checked: an identifier with
-- failures + attempts in flight >= threshold is "busy" (the caller waits for them), a locked
-- one is refused; otherwise a lease (expiring after lease_ms, so a crashed process frees it)
-- is added. done.lua settles the lease.
--
-- Successful attempts settle here too, in the next call of the same process (limiter.py:
-- a success needs no answer, so it costs no round trip of its own): their leases are removed
-- and their counters cleared before anything else is looked at.
--
-- A source that proved the secret before: a release with known_ms > 0 (a client's per-IP
-- counter) stamps `ok` on its hash and keeps it known_ms. For a request whose FIRST counter
-- (its per-IP one) carries an `ok` younger than waive_ms, a later counter with waive_ms > 0
-- (a client's own) is waived, locked or busy: failures from elsewhere cannot lock a client
-- out of the hosts it already uses (Keycloak GHSA-cq42-vhv7-xr7p, for clients); and the
-- first counter itself, while it holds no failure, puts no cap on attempts in flight: a busy
-- client's parallel calls from its own host do not queue behind each other.
--
-- A refused key is also put in the sorted set of refusing keys (the last KEY), scored by when
-- it lets a request through again, so operators list what refuses now without a SCAN of the
-- keyspace (services.blocks_current); entries past their time are trimmed on each refusal,
-- and the set is capped at REFUSING_MAX (the soonest-free dropped first).
--
-- KEYS: the rules' keys, then a (hash, lease zset) pair per counter, then per release, then
--   the refusing-keys index.
-- ARGV: n_rules, n_counters, n_releases, lease id, lease_ms, then per rule one string of 7
--   comma-separated numbers (interval_ms, burst, backoff 0|1|2, base_ms, multiplier, cap_ms,
--   period_ms), then 3 per counter (threshold, failure_reset_ms, waive_ms), then 2 per
--   release (lease id, known_ms).
-- Returns, comma-separated in one string: code, per rule: retry_ms, remaining, reset_ms,
--   notify, per counter: state, retry_ms; code 0 allowed, 1 refused by a rate rule, 2 a
--   counter is locked, 3 busy.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nr, nc, nrel = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, lease_ms = ARGV[4], tonumber(ARGV[5])
local rel_args = 6 + nr + 3 * nc
for k = 1, nrel do
  local hk, zk = KEYS[nr + 2 * nc + 2 * k - 1], KEYS[nr + 2 * nc + 2 * k]
  local r = rel_args + 2 * (k - 1)
  redis.call('ZREM', zk, ARGV[r])
  redis.call('HDEL', hk, 'c', 'lu', 'L', 't')
  local known = tonumber(ARGV[r + 1])
  if known > 0 then
    redis.call('HSET', hk, 'ok', now)
    redis.call('PEXPIRE', hk, known)
  end
end
local REFUSING_MAX = 100000
local a = 6
local rules = {}
local refused = false
for i = 1, nr do
  local n = {}
  for x in string.gmatch(ARGV[a], '[^,]+') do n[#n + 1] = tonumber(x) end
  local r = {
    interval = n[1], burst = n[2], backoff = n[3], base = n[4], mult = n[5], cap = n[6],
    period = n[7],
  }
  a = a + 1
  local h = redis.call('HMGET', KEYS[i], 'tat', 'v', 'tv', 'blk', 'ev')
  local tat = math.max(tonumber(h[1]) or now, now)
  r.v, r.tv = tonumber(h[2]) or 0, tonumber(h[3]) or now
  r.blk, r.ev = tonumber(h[4]) or 0, tonumber(h[5]) or 0
  r.tat = tat
  r.newtat = tat + r.interval
  local allow_at = r.newtat - r.burst * r.interval
  r.retry, r.penalised = 0, r.blk > now
  if r.penalised then
    r.retry = r.blk - now
  elseif allow_at > now then
    r.retry = allow_at - now
  end
  if r.retry > 0 then refused = true end
  r.remaining = math.max(0, math.floor((now - allow_at) / r.interval))
  r.reset = r.newtat - now
  r.notify = 0
  rules[i] = r
end

local function expire(key, r)
  local keep = math.max(r.newtat - now, r.blk - now, r.v * r.period, 0) + 1000
  redis.call('PEXPIRE', key, math.ceil(keep))
end

local out = {0}
local function report(code, counters)
  out[1] = code
  for i = 1, nr do
    local r = rules[i]
    out[#out + 1] = math.ceil(r.retry)
    out[#out + 1] = r.retry > 0 and 0 or r.remaining
    out[#out + 1] = math.ceil(r.retry > 0 and r.retry or r.reset)
    out[#out + 1] = r.notify
  end
  for j = 1, nc do
    out[#out + 1] = counters[j] and counters[j][1] or 0
    out[#out + 1] = counters[j] and math.ceil(counters[j][2]) or 0
  end
  -- one bulk string rather than an array: a client reads one reply, not one per number
  return table.concat(out, ',')
end

if refused then
  for i = 1, nr do
    local r = rules[i]
    if r.retry > 0 then
      if not r.penalised then
        local forgotten = math.floor((now - r.tv) / r.period)
        r.v = math.max(0, r.v - forgotten) + 1
        r.tv = now
        if r.backoff > 0 then
          local penalty = r.base * r.v
          if r.backoff == 2 then penalty = r.base * r.mult ^ (r.v - 1) end
          penalty = math.min(penalty, r.cap)
          r.retry = math.max(r.retry, penalty)
          r.blk = now + r.retry
        end
      end
      if now >= r.ev then
        r.ev = now + r.period
        r.notify = 1
      end
      redis.call('HSET', KEYS[i], 'v', r.v, 'tv', r.tv, 'blk', r.blk, 'ev', r.ev)
      r.newtat = r.tat  -- unchanged: keep it as long as it matters
      expire(KEYS[i], r)
      redis.call('ZADD', KEYS[#KEYS], now + r.retry, KEYS[i])
    end
  end
  local refusing = KEYS[#KEYS]
  redis.call('ZREMRANGEBYSCORE', refusing, '-inf', now)
  if redis.call('ZCARD', refusing) > REFUSING_MAX then
    redis.call('ZREMRANGEBYRANK', refusing, 0, -REFUSING_MAX - 1)
  end
  return report(1, {})
end

local counters = {}
local code = 0
for j = 1, nc do
  local hk, zk = KEYS[nr + 2 * j - 1], KEYS[nr + 2 * j]
  local threshold, reset, waive = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  redis.call('ZREMRANGEBYSCORE', zk, '-inf', now)
  local h = redis.call('HMGET', hk, 'c', 'lu', 't', 'perm')
  local c, lu, last = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or now
  if now - last > reset then c = 0 end
  if h[4] then
    counters[j] = {2, -1}
  elseif lu > now then
    counters[j] = {2, lu - now}
  elseif c + redis.call('ZCARD', zk) >= threshold then
    counters[j] = {3, 0}
  else
    counters[j] = {0, 0}
  end
  if counters[j][1] ~= 0 and waive > 0 then
    local ok = tonumber(redis.call('HGET', KEYS[nr + 1], 'ok'))
    if ok and now - ok < waive then
      if j > 1 then
        counters[j] = {0, 0}  -- the identifier's own counter: waived for a known host
      elseif counters[j][1] == 3 and c == 0 then
        counters[j] = {0, 0}  -- a known host without failures: no cap on its parallel calls
      end
    end
  end
  if counters[j][1] == 2 then
    code = 2
  elseif counters[j][1] == 3 and code == 0 then
    code = 3
  end
end
if code == 3 then return report(3, counters) end  -- waits and comes back: nothing consumed

for i = 1, nr do
  local r = rules[i]
  redis.call('HSET', KEYS[i], 'tat', r.newtat)
  expire(KEYS[i], r)
end
if code == 0 then
  for j = 1, nc do
    local zk = KEYS[nr + 2 * j]
    redis.call('ZADD', zk, now + lease_ms, lease)
    redis.call('PEXPIRE', zk, lease_ms + 1000)
  end
end
return report(code, counters)
