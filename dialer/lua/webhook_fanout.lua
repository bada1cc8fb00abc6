-- Turn the event at the head of the outbox into one delivery per subscribed endpoint.
-- KEYS: 1 outbox list, 2 the campaign's deliveries hash, 3 due zset, 4 the campaign's webhook stats
-- ARGV: 1 the event as read from the head of the outbox, 2 now, 3 campaign id,
--       then pairs of (delivery id, delivery json)
-- Returns the deliveries created, or -1 when the head is no longer that event (taken by another run).
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return -1 end
local created = 0
for i = 4, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), ARGV[3] .. '|' .. ARGV[i])
    created = created + 1
  end
end
if created > 0 then redis.call('HINCRBY', KEYS[4], 'created', created) end
redis.call('LPOP', KEYS[1])
return created
