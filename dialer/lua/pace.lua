-- Move due contacts to `queued` attempts within the concurrency limits and the pacing budget.
-- KEYS: 1 campaign hash, 2 due zset, 3 status hash, 4 attempts hash, 5 campaign active zset,
--       6 trunk active zset, 7 leases zset, 8 progress hash, 9 campaign bucket hash,
--       10 trunk bucket hash
-- ARGV: 1 campaign id, 2 now (the dialer's clock, for the ledger), 3 lease seconds,
--       4 campaign max concurrent, 5 trunk max concurrent (0 = none),
--       6 campaign calls per second, 7 campaign burst,
--       8 trunk calls per second (0 = none), 9 trunk burst,
--       10 campaigns still to be paced on this trunk in this run (the trunk's budget is shared
--          between them: this one may take at most its share), 11.. contact ids (inside their window)
-- The budgets are token buckets refilled at the calls-per-second rates in the Redis server's
-- clock, so a fractional rate (0.5/s) releases one attempt every two seconds, and campaigns
-- on one trunk never release more than the trunk admits. Leases are in the server's clock too.
-- Returns the attempt members ("contact:seq") queued.
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return {} end
local cid, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local server_now = tonumber(t[1]) + tonumber(t[2]) / 1e6
-- The server process that queued the attempt (run_id changes with every restart and failover):
-- a claim in that same run cannot follow a claim Redis lost, so its room cannot hold a call.
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')

local function refill(key, rate, burst)
  local tokens = tonumber(redis.call('HGET', key, 'tokens') or burst)
  local at = tonumber(redis.call('HGET', key, 'at') or server_now)
  return math.min(burst, tokens + math.max(0, server_now - at) * rate)
end

local free = tonumber(ARGV[4]) - redis.call('ZCARD', KEYS[5])
local trunk_max = tonumber(ARGV[5])
if trunk_max > 0 then
  free = math.min(free, trunk_max - redis.call('ZCARD', KEYS[6]))
end
local campaign_rate, campaign_burst = tonumber(ARGV[6]), tonumber(ARGV[7])
local campaign_tokens = refill(KEYS[9], campaign_rate, campaign_burst)
free = math.min(free, math.floor(campaign_tokens))
local trunk_rate, trunk_burst = tonumber(ARGV[8]), tonumber(ARGV[9])
local trunk_tokens = 0
if trunk_rate > 0 then
  trunk_tokens = refill(KEYS[10], trunk_rate, trunk_burst)
  free = math.min(free, math.ceil(math.floor(trunk_tokens) / math.max(1, tonumber(ARGV[10]))))
end

local queued = {}
for i = 11, #ARGV do
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
    local lease_until = server_now + lease
    local attempt = {state = 'queued', contact = tonumber(id), seq = status.seq, queued_at = now,
                     lease_until = lease_until, run = run}
    redis.call('HSET', KEYS[4], member, cjson.encode(attempt))
    redis.call('ZADD', KEYS[5], lease_until, member)
    redis.call('ZADD', KEYS[6], lease_until, cid .. ':' .. member)
    redis.call('ZADD', KEYS[7], lease_until, cid .. ':' .. member)
    redis.call('HINCRBY', KEYS[8], 'in_flight', 1)
    queued[#queued + 1] = member
    free = free - 1
  end
end

redis.call('HSET', KEYS[9], 'tokens', campaign_tokens - #queued, 'at', server_now)
redis.call('EXPIRE', KEYS[9], 3600)
if trunk_rate > 0 then
  redis.call('HSET', KEYS[10], 'tokens', trunk_tokens - #queued, 'at', server_now)
  redis.call('EXPIRE', KEYS[10], 3600)
end
return queued
