-- Which of a batch of rate rules' keys refuse now: the operator's read (services.
-- blocks_current), filtered in Redis so a thousand keys cost one command and a short reply
-- (measured against HMGET per key in a pipeline: services._read_blocks).
--
-- A key refuses when its backoff penalty runs (blk > now) or its quota is spent:
-- max(tat, now) + interval - burst * interval > now (evaluate.lua), that is
-- tat - (burst - 1) * interval > now.
-- KEYS: the keys. ARGV[i]: key i's (burst - 1) * interval, in ms.
-- Returns: {now, then per refusing key: its index, tat, v, tv, blk}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
for i = 1, #KEYS do
  local ok, h = pcall(redis.call, 'HMGET', KEYS[i], 'tat', 'v', 'tv', 'blk')
  if ok then  -- not a hash (WRONGTYPE): no rule keeps it
    local tat, blk = tonumber(h[1]) or 0, tonumber(h[4]) or 0
    if blk > now or tat - tonumber(ARGV[i]) > now then
      out[#out + 1] = i
      for f = 1, 4 do out[#out + 1] = h[f] end
    end
  end
end
return out
