-- Give up to ARGV[2] contacts still waiting in the due set their final outcome `cancelled`.
-- KEYS: 1 due zset, 2 status hash, 3 progress hash, 4 campaign hash
-- ARGV: 1 now, 2 batch size. Returns how many were cancelled (0 when the due set is empty).
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local status = cjson.decode(redis.call('HGET', KEYS[2], id) or '{"seq":0,"attempts":0}')
  status.state = 'final'
  status.outcome = 'cancelled'
  status.final_at = tonumber(ARGV[1])
  redis.call('HSET', KEYS[2], id, cjson.encode(status))
end
if #ids > 0 then
  redis.call('HINCRBY', KEYS[3], 'final', #ids)
  redis.call('HINCRBY', KEYS[3], 'outcome:cancelled', #ids)
end
return #ids
