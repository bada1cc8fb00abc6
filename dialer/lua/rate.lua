-- A sliding-window rate limiter shared by every worker: at most ARGV[2] events per
-- ARGV[3] seconds. KEYS: 1 the window's zset. ARGV: 1 now, 2 limit, 3 window seconds, 4 member.
-- Returns 0 when the event may happen now (and records it), else seconds to wait.
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
