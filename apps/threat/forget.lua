-- Takes back what history.lua learned from one success a rule then refused
-- (apps/threat/history.py, RedisHistory.forget): the attacker's country, network and device
-- must not become the person's. KEYS: 1 the baseline. ARGV: 1-6 the attempt's country, asn,
-- network, device, browser, os ("" none); 7-12 "1" where that value was known before;
-- 13 hour; 14 the previous success's time (ms, "" none), 15 lat, 16 lon.
local kinds = {'c', 'a', 'n', 'd', 'b', 'o'}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i, kind in ipairs(kinds) do
  local value = ARGV[i]
  if value ~= '' then
    local field = kind .. ':' .. value
    if ARGV[6 + i] == '1' then
      redis.call('HINCRBY', KEYS[1], field, -1)
    elseif redis.call('HDEL', KEYS[1], field) == 1 then
      redis.call('HINCRBY', KEYS[1], '#' .. kind, -1)
    end
  end
end
redis.call('HINCRBY', KEYS[1], 'h:' .. ARGV[13], -1)
if redis.call('HINCRBY', KEYS[1], 's', -1) <= 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
if ARGV[14] ~= '' then
  redis.call('HSET', KEYS[1], 'at', ARGV[14])
else
  redis.call('HDEL', KEYS[1], 'at')
end
if ARGV[15] ~= '' then
  redis.call('HSET', KEYS[1], 'lat', ARGV[15], 'lon', ARGV[16])
else
  redis.call('HDEL', KEYS[1], 'lat', 'lon')
end
return 1
