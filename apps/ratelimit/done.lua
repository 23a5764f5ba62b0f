-- Settles an attempt reserved by evaluate.lua (Keycloak's brute-force detector model).
-- Success clears the counters; a failure counts, and every `threshold` consecutive failures
-- lock the identifier for min(max_wait, wait_increment * lockouts); after `permanent_after`
-- lockouts (0: never) the lock stays until an operator lifts it. Counters start from zero
-- after `failure_reset` without a failure.
--
-- KEYS: a (hash, lease zset, identifier's index set) triple per counter.
-- ARGV: n, outcome ("ok" | "fail"), then per counter its lease id and 7 numbers: threshold,
--   wait_increment_ms, max_wait_ms, failure_reset_ms, permanent_after, per_ip (0|1),
--   known_ms (> 0: a success stamps `ok` on the hash and keeps it that long; evaluate.lua).
-- A failure of a per-IP counter adds its hash to the identifier's index set, so operators
-- read an identifier's counters without scanning the keyspace (services.lockouts_for).
-- Returns per counter: locked now (0|1), wait_ms, lockouts, permanent (0|1), failures.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n, outcome = tonumber(ARGV[1]), ARGV[2]
local out = {}
for j = 1, n do
  local hk, zk, ik = KEYS[3 * j - 2], KEYS[3 * j - 1], KEYS[3 * j]
  local a = 3 + 8 * (j - 1)
  local lease = ARGV[a]
  a = a + 1
  local threshold, incr, max_wait = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local reset, permanent_after = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local per_ip = ARGV[a + 5] == '1'
  local known = tonumber(ARGV[a + 6])
  redis.call('ZREM', zk, lease)
  if outcome == 'ok' then
    redis.call('HDEL', hk, 'c', 'lu', 'L', 't')
    if known > 0 then
      redis.call('HSET', hk, 'ok', now)
      redis.call('PEXPIRE', hk, known)
    end
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0
  else
    local h = redis.call('HMGET', hk, 'c', 'L', 't', 'perm')
    local c, lockouts, last = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or now
    if now - last > reset then c, lockouts = 0, 0 end
    c = c + 1
    local locked, wait, perm = 0, 0, h[4] and 1 or 0
    local failures = c
    if c >= threshold then
      lockouts = lockouts + 1
      c = 0
      wait = math.min(max_wait, incr * lockouts)
      locked = 1
      redis.call('HSET', hk, 'lu', now + wait)
      if permanent_after > 0 and lockouts >= permanent_after then
        perm = 1
        redis.call('HSET', hk, 'perm', 1)
      end
    end
    redis.call('HSET', hk, 'c', c, 'L', lockouts, 't', now)
    local ttl = math.ceil(math.max(reset, wait) + 1000)
    if perm == 1 then
      redis.call('PERSIST', hk)
    else
      redis.call('PEXPIRE', hk, ttl)
    end
    if per_ip then
      -- the index lives as long as its longest-lived member (a year for a permanent lock,
      -- renewed by each failure); a member whose counter expired is skipped by readers
      redis.call('SADD', ik, hk)
      local keep = perm == 1 and 31536000000 or ttl
      if redis.call('PTTL', ik) < keep then
        redis.call('PEXPIRE', ik, keep)
      end
    end
    out[#out + 1] = locked; out[#out + 1] = wait; out[#out + 1] = lockouts
    out[#out + 1] = perm; out[#out + 1] = failures
  end
end
return out
