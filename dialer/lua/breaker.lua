-- The circuit breaker: record how an attempt ended and pause the campaign when most recent
-- attempts failed for one reason that is not the callee's. Time is the Redis server's.
-- KEYS: 1 zset of recent attempt endings, 2 zset of recent failures of this reason,
--       3 campaign hash, 4 running set
-- ARGV: 1 campaign id, 2 unique member, 3 window seconds, 4 min attempts, 5 failure ratio,
--       6 reason ('' for an ending that is no failure of ours), 7 pause reason template
--       ('{failed}' and '{total}' are filled in)
-- Returns the pause reason when this ending tripped the breaker, else ''.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local window = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
if ARGV[6] == '' then return '' end
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('EXPIRE', KEYS[2], math.ceil(window) + 1)
local total = redis.call('ZCARD', KEYS[1])
local failed = redis.call('ZCARD', KEYS[2])
if total < tonumber(ARGV[4]) or failed < tonumber(ARGV[5]) * total then return '' end
if redis.call('HGET', KEYS[3], 'state') ~= 'running' then return '' end
local reason = ARGV[7]:gsub('{failed}', tostring(failed)):gsub('{total}', tostring(total))
redis.call('HSET', KEYS[3], 'state', 'paused', 'pause_reason', reason, 'paused_at', now)
redis.call('SREM', KEYS[4], ARGV[1])
return reason
