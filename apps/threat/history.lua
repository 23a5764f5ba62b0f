-- One sign-in attempt against its history, in one round trip (apps/threat/history.py).
-- Records the attempt in the sliding windows, then reads the counts (this attempt included);
-- reads the person's baseline BEFORE learning this attempt (a success) into it.
--
-- KEYS: 1 failures of the person (7 d)   2 failures of the IP (24 h)   3 attempts of the IP (1 h)
--       4 failures of the network (1 h)  5 accounts tried from the IP   6 ... from the network
--       7 IPs that tried the person      8 accounts the password was tried against
--       9 the person's baseline (a hash)
-- ARGV: 1 now (ms)  2 attempt id  3 success 0/1  4 person  5 ip  6 password given 0/1
--       7 baseline wanted 0/1  8 cap (members per window)  9 baseline TTL (ms)
--       10 country 11 asn 12 network 13 device 14 browser 15 os 16 hour 17 lat 18 lon
--       19.. caps of country, asn, network, device, browser, os (distinct values kept)
--       25 learn only 0/1 (count nothing; learn the success into the baseline)
local now = tonumber(ARGV[1])
local HOUR, DAY, WEEK = 3600000, 86400000, 604800000
local cap = tonumber(ARGV[8])

local function add(key, member, keep)
  redis.call('ZADD', key, now, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep)
  redis.call('ZREMRANGEBYRANK', key, 0, -cap - 1)  -- the newest `cap` stay
  redis.call('PEXPIRE', key, keep)
end

local function count(key, since)
  return redis.call('ZCOUNT', key, '(' .. (now - since), '+inf')
end

local success = ARGV[3] == '1'
local id, person, ip = ARGV[2], ARGV[4], ARGV[5]
-- ARGV[25] "1": learn this success into the baseline and nothing else (RedisHistory.learn: a
-- success whose second factor was proven after the decision asked for it).
local learn_only = ARGV[25] == '1'
if learn_only then
  -- nothing counted: the attempt was counted when it was judged
elseif not success then
  add(KEYS[1], id, WEEK)
  if ip ~= '' then
    add(KEYS[2], id, DAY)
    add(KEYS[4], id, HOUR)
  end
end
if ip ~= '' and not learn_only then
  add(KEYS[3], id, HOUR)
  add(KEYS[5], person, HOUR)
  add(KEYS[6], person, HOUR)
  add(KEYS[7], ip, HOUR)
end
if ARGV[6] == '1' and not learn_only then add(KEYS[8], person, HOUR) end

local reply = {
  count(KEYS[1], HOUR), count(KEYS[1], DAY), count(KEYS[1], WEEK),
  count(KEYS[3], HOUR), count(KEYS[2], HOUR), count(KEYS[2], DAY), count(KEYS[4], HOUR),
  count(KEYS[5], HOUR), count(KEYS[6], HOUR), count(KEYS[7], HOUR),
  ARGV[6] == '1' and count(KEYS[8], HOUR) or 0,
}
-- One bulk string, "n,n,...": redis-py parses one reply instead of forty-five.
if ARGV[7] ~= '1' then return table.concat(reply, ',') end

-- The baseline: the field of each of this attempt's values, the hour histogram, the last
-- success. Fields: c:<country> a:<asn> n:<network> d:<device> b:<browser> o:<os> h:<hour>
-- (counts), #c #a #n #d #b #o (distinct values kept), s (successes), at lat lon (last one).
local kinds = {'c', 'a', 'n', 'd', 'b', 'o'}
local fields = {}
for i, kind in ipairs(kinds) do fields[i] = kind .. ':' .. ARGV[9 + i] end
for h = 0, 23 do fields[#fields + 1] = 'h:' .. h end
fields[#fields + 1] = 's'
fields[#fields + 1] = 'at'
fields[#fields + 1] = 'lat'
fields[#fields + 1] = 'lon'
local base = redis.call('HMGET', KEYS[9], unpack(fields))
for _, value in ipairs(base) do reply[#reply + 1] = value or '' end

if success then
  for i, kind in ipairs(kinds) do
    local value = ARGV[9 + i]
    if value ~= '' then
      if base[i] then
        redis.call('HINCRBY', KEYS[9], fields[i], 1)
      elseif tonumber(redis.call('HGET', KEYS[9], '#' .. kind) or '0') < tonumber(ARGV[18 + i]) then
        redis.call('HINCRBY', KEYS[9], '#' .. kind, 1)
        redis.call('HSET', KEYS[9], fields[i], 1)
      end
    end
  end
  redis.call('HINCRBY', KEYS[9], 'h:' .. ARGV[16], 1)
  redis.call('HINCRBY', KEYS[9], 's', 1)
  redis.call('HSET', KEYS[9], 'at', now)
  if ARGV[17] ~= '' then
    redis.call('HSET', KEYS[9], 'lat', ARGV[17], 'lon', ARGV[18])
  else
    redis.call('HDEL', KEYS[9], 'lat', 'lon')
  end
  redis.call('PEXPIRE', KEYS[9], tonumber(ARGV[9]))
end
return table.concat(reply, ',')
