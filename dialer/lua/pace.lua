-- Move due contacts to `queued` attempts within the concurrency limits.
-- KEYS: 1 campaign hash, 2 due zset, 3 status hash, 4 attempts hash, 5 campaign active zset,
--       6 trunk active zset, 7 leases zset, 8 progress hash
-- ARGV: 1 campaign id, 2 now, 3 lease seconds, 4 campaign max concurrent,
--       5 trunk max concurrent (0 = none), 6.. contact ids (already inside their window)
-- Returns the attempt members ("contact:seq") queued.
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return {} end
local cid, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local free = tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[5])
local trunk_max = tonumber(ARGV[5])
if trunk_max > 0 then
  free = math.min(free, trunk_max - redis.call('ZCARD', KEYS[6]))
end
local queued = {}
for i = 6, #ARGV do
  if free <= 0 then break end
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[2], id)
  if score and tonumber(score) <= now then
    redis.call('ZREM', KEYS[2], id)
    local raw = redis.call('HGET', KEYS[3], id)
    local status = raw and cjson.decode(raw) or {seq = 0, attempts = 0}
    status.seq = (status.seq or 0) + 1
    status.state = 'in_flight'
    redis.call('HSET', KEYS[3], id, cjson.encode(status))
    local member = id .. ':' .. status.seq
    local attempt = {state = 'queued', contact = tonumber(id), seq = status.seq, queued_at = now,
                     lease_until = now + lease}
    redis.call('HSET', KEYS[4], member, cjson.encode(attempt))
    redis.call('ZADD', KEYS[5], now + lease, member)
    redis.call('ZADD', KEYS[6], now + lease, cid .. ':' .. member)
    redis.call('ZADD', KEYS[7], now + lease, cid .. ':' .. member)
    redis.call('HINCRBY', KEYS[8], 'in_flight', 1)
    queued[#queued + 1] = member
    free = free - 1
  end
end
return queued
