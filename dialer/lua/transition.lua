-- Move an attempt from one of the expected states to a new non-final state,
-- extending its lease (queued -> dialing on claim, dialing -> in_call on answer).
-- KEYS: 1 attempts hash, 2 campaign active zset, 3 trunk active zset, 4 leases zset
-- ARGV: 1 campaign id, 2 member, 3 expected states (comma separated), 4 new state,
--       5 lease until, 6 json object of fields to merge into the attempt
-- Returns 'ok', or the attempt's current state when it was not in an expected one.
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 'missing' end
local attempt = cjson.decode(raw)
if not string.find(',' .. ARGV[3] .. ',', ',' .. attempt.state .. ',', 1, true) then
  return attempt.state
end
attempt.state = ARGV[4]
attempt.lease_until = tonumber(ARGV[5])
for k, v in pairs(cjson.decode(ARGV[6])) do attempt[k] = v end
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(attempt))
local full = ARGV[1] .. ':' .. ARGV[2]
redis.call('ZADD', KEYS[2], 'XX', ARGV[5], ARGV[2])
redis.call('ZADD', KEYS[3], 'XX', ARGV[5], full)
redis.call('ZADD', KEYS[4], 'XX', ARGV[5], full)
return 'ok'
