-- Record what became of a delivery, if it is still as the caller read it.
-- KEYS: 1 the campaign's deliveries hash, 2 due zset, 3 in-flight zset, 4 the campaign's webhook stats
-- ARGV: 1 delivery id, 2 due/in-flight member, 3 the tries the caller read, 4 the new delivery json
--         ('' removes it: a delivered one is only counted, so the hash holds what may still be sent),
--       5 when it is due again ('' for never: delivered or failed), 6 stats counter to add 1 to ('' none)
-- Returns 'ok', or 'stale' when the delivery changed meanwhile (nothing written).
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw or tostring(cjson.decode(raw).tries) ~= ARGV[3] then return 'stale' end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('ZREM', KEYS[3], ARGV[2])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[5]), ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[6], 1) end
return 'ok'
