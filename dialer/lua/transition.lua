-- Move an attempt from one of the expected states to a non-final state and renew its lease
-- (queued -> dialing on claim, dialing -> in_call on answer, x -> x to extend a lease).
-- Leases are in the Redis server's clock, never a worker's.
-- KEYS: 1 attempts hash, 2 campaign active zset, 3 trunk active zset, 4 leases zset
-- ARGV: 1 campaign id, 2 member, 3 expected states (comma separated), 4 new state,
--       5 lease seconds from now, 6 json object of fields to merge into the attempt,
--       7 claim token ('' for none): the task that holds the attempt from now on
-- Returns 'ok', or the attempt's current state when it was not in an expected one. A claim
-- that this token already holds is 'ok' too: redis-py re-runs a script whose reply was lost.
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 'missing' end
local attempt = cjson.decode(raw)
local token = ARGV[7]
if token ~= '' and attempt.state == ARGV[4] and attempt.claim == token then return 'ok' end
if not string.find(',' .. ARGV[3] .. ',', ',' .. attempt.state .. ',', 1, true) then
  return attempt.state
end
local t = redis.call('TIME')
local lease_until = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[5])
attempt.state = ARGV[4]
attempt.lease_until = lease_until
if token ~= '' then attempt.claim = token end
for k, v in pairs(cjson.decode(ARGV[6])) do attempt[k] = v end
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(attempt))
local full = ARGV[1] .. ':' .. ARGV[2]
redis.call('ZADD', KEYS[2], 'XX', lease_until, ARGV[2])
redis.call('ZADD', KEYS[3], 'XX', lease_until, full)
redis.call('ZADD', KEYS[4], 'XX', lease_until, full)
return 'ok'
