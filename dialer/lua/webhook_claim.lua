-- Claim due deliveries for sending, at most ARGV[3] in flight across the deployment.
-- KEYS: 1 due zset, 2 in-flight zset (member -> lease expiry)
-- ARGV: 1 now, 2 lease (s), 3 max in flight, 4 most to claim in this call
-- A claim whose lease ran out (its worker died) is due again first. Returns the claimed members.
local now = tonumber(ARGV[1])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZADD', KEYS[1], now, member)
end
local free = math.min(tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[2]), tonumber(ARGV[4]))
if free <= 0 then return {} end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, free)
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), member)
end
return due
