-- The last step before an INVITE leaves (invariants I1, I3, I4), in one atomic script:
-- the attempt is still `dialing` under this task's claim, the campaign still runs, the
-- number is not on the DNC list, and (mode 'invite') a calls-per-second slot is free for
-- the campaign and for the trunk at once. Every call renews the attempt's lease, so a task
-- waiting for a slot never loses its attempt to the reconciler. Time is the Redis server's.
-- KEYS: 1 attempts hash, 2 campaign hash, 3 campaign active zset, 4 trunk active zset,
--       5 leases zset, 6 dnc set, 7 campaign rate zset, 8 trunk rate zset, 9 metrics hash
-- ARGV: 1 campaign id, 2 member, 3 claim token, 4 lease seconds, 5 number (E.164),
--       6 mode: 'hold' (check and renew) | 'invite' (also take the rate slots and log the try),
--       7 campaign events per window, 8 campaign window seconds,
--       9 trunk events per window (0 = no trunk limit), 10 trunk window seconds,
--       11 nonce: unique per INVITE try, so a re-run after a lost reply is not counted twice,
--       12 json object of fields to merge into the attempt when an INVITE is admitted (caller ID),
--       13 how late (seconds) a waiter may come back for its slot and still take it: the rate
--          guard, the jitter the windows are lengthened by (at least half the slots' spacing),
--       14 n, then n histogram arguments for the attempt's first INVITE (its dial latency): bucket
--          fields to count once each, the sum field, the value ('0': nothing to observe)
-- Returns 'ok'; 'wait:<seconds>' (a slot is reserved for this nonce that far ahead: call again
-- then; the lease was renewed); 'lost:<state>' (another
-- claim or an ending took the attempt: never dial); 'campaign:<state>'; or 'dnc'.
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 'lost:missing' end
local attempt = cjson.decode(raw)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
if attempt.state ~= 'dialing' or attempt.claim ~= ARGV[3] then
  -- Say so in the ledger: a late task came back for this attempt and was refused.
  attempt.late_tasks_refused = (attempt.late_tasks_refused or 0) + 1
  attempt.late_task_refused_at = now
  redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(attempt))
  return 'lost:' .. attempt.state
end
local mode, nonce = ARGV[6], ARGV[11]
if mode == 'invite' and attempt.last_nonce == nonce then return 'ok' end
local campaign_state = redis.call('HGET', KEYS[2], 'state')
if campaign_state ~= 'running' then return 'campaign:' .. tostring(campaign_state) end
if redis.call('SISMEMBER', KEYS[6], ARGV[5]) == 1 then return 'dnc' end

local lease_until = now + tonumber(ARGV[4])
attempt.lease_until = lease_until
local full = ARGV[1] .. ':' .. ARGV[2]
redis.call('ZADD', KEYS[3], 'XX', lease_until, ARGV[2])
redis.call('ZADD', KEYS[4], 'XX', lease_until, full)
redis.call('ZADD', KEYS[5], 'XX', lease_until, full)

-- A waiter that comes back well after its slot (a busy host woke it late) would go out bunched
-- with the INVITEs of the slots after it: its slot is spent, and it takes a new one.
if mode == 'invite' and attempt.reserved_nonce == nonce
    and now > attempt.reserved_at + (attempt.reserved_slack or 0) then
  attempt.reserved_nonce = nil
end
if mode == 'invite' and attempt.reserved_nonce ~= nonce then
  -- Reserve the first slot both scopes allow: evenly spaced (a burst admitted at once reaches
  -- the carrier bunched by whatever delays each request on its way), at most `limit` per window.
  -- Reserving, rather than telling every waiter to try again, keeps waiters from stampeding.
  local slot, gap = now, math.huge
  local scopes = {{KEYS[7], tonumber(ARGV[7]), tonumber(ARGV[8])}, {KEYS[8], tonumber(ARGV[9]), tonumber(ARGV[10])}}
  for _, scope in ipairs(scopes) do
    local key, limit, window = scope[1], scope[2], scope[3]
    if limit > 0 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
      local count = redis.call('ZCARD', key)
      if count >= limit then
        local nth = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
        slot = math.max(slot, tonumber(nth[2]) + window)
      end
      local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
      if newest[2] then slot = math.max(slot, tonumber(newest[2]) + window / limit) end
      gap = math.min(gap, window / limit)
    end
  end
  for _, scope in ipairs(scopes) do
    if scope[2] > 0 then
      redis.call('ZADD', scope[1], slot, nonce)
      redis.call('EXPIRE', scope[1], math.ceil(slot - now + scope[3]) + 1)
    end
  end
  attempt.reserved_nonce = nonce
  attempt.reserved_at = slot
  attempt.reserved_slack = gap < math.huge and math.max(gap / 2, tonumber(ARGV[13])) or 0
end
if mode == 'invite' and attempt.reserved_at > now then
  redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(attempt))
  return 'wait:' .. string.format('%.6f', attempt.reserved_at - now)
end
if mode == 'invite' then
  for k, v in pairs(cjson.decode(ARGV[12] ~= '' and ARGV[12] or '{}')) do attempt[k] = v end
  attempt.invites = (attempt.invites or 0) + 1
  attempt.last_nonce = nonce
  attempt.last_invite_at = now
  local n = tonumber(ARGV[14] or '0')
  if n >= 2 and attempt.invites == 1 then
    for i = 15, 14 + n - 2 do redis.call('HINCRBY', KEYS[9], ARGV[i], 1) end
    redis.call('HINCRBYFLOAT', KEYS[9], ARGV[13 + n], ARGV[14 + n])
  end
end
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(attempt))
return 'ok'
