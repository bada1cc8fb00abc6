-- End an attempt: the one transition that frees its lease and decides the contact's fate.
-- KEYS: 1 attempts hash, 2 status hash, 3 due zset, 4 progress hash, 5 campaign active zset,
--       6 trunk active zset, 7 leases zset, 8 campaign hash, 9 running set, 10 results hash
-- ARGV: 1 campaign id, 2 member, 3 expected states (comma separated), 4 now,
--       5 verdict: 'final' | 'retry' | 'requeue' | 'pause' | 'callback' (the callee asked to be
--         called back: due again at ARGV[8], counted apart from the attempts, at most ARGV[13] times)
--       6 outcome (the final one, or the one to give when attempts run out)
--       7 counts ('1' uses up an attempt), 8 due time for retry/requeue, 9 max attempts,
--       10 json object of fields to merge into the attempt, 11 pause reason,
--       12 the call's result json, stored verbatim under the attempt ('' for none),
--       13 max callbacks per contact,
--       14 alternate numbers: the outcomes (comma separated) that end the contact's current
--          number and move it to its next one, due at once with a fresh attempt count ('' = off),
--       15 how many numbers the contact has,
--       16 the outcomes best first (comma separated): a contact that tried several numbers
--          ends with the best outcome across them
-- Returns the contact's resulting state: 'final:<outcome>', 'pending', or the attempt's
-- state when it was not in an expected one (nothing changed).
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 'missing' end
local attempt = cjson.decode(raw)
if not string.find(',' .. ARGV[3] .. ',', ',' .. attempt.state .. ',', 1, true) then
  return attempt.state
end
local cid, member, now = ARGV[1], ARGV[2], tonumber(ARGV[4])
local verdict, outcome, counts = ARGV[5], ARGV[6], ARGV[7] == '1'
local contact = tostring(attempt.contact)

attempt.state = 'done'
attempt.ended_at = attempt.ended_at or now
attempt.counted = counts
for k, v in pairs(cjson.decode(ARGV[10])) do attempt[k] = v end
redis.call('HSET', KEYS[1], member, cjson.encode(attempt))
if ARGV[12] ~= '' then redis.call('HSET', KEYS[10], member, ARGV[12]) end
redis.call('ZREM', KEYS[5], member)
redis.call('ZREM', KEYS[6], cid .. ':' .. member)
redis.call('ZREM', KEYS[7], cid .. ':' .. member)
redis.call('HINCRBY', KEYS[4], 'in_flight', -1)
-- Attempts by result and SIP code, for the metrics: the SIP class when a SIP answer came,
-- 'not_dialed' when no INVITE left, else the outcome given.
local result = attempt.sip_class or (attempt.invite_sent == false and 'not_dialed') or outcome
local code = attempt.sip_code and string.format('%d', attempt.sip_code) or ''
redis.call('HINCRBY', KEYS[4], 'attempts:' .. result .. ':' .. code, 1)

local status = cjson.decode(redis.call('HGET', KEYS[2], contact) or '{"seq":0,"attempts":0}')
if counts then status.attempts = (status.attempts or 0) + 1 end
if status.callback_pending then
  -- This attempt was the callback the contact asked for.
  status.callback_pending = false
  status.callbacks_done = (status.callbacks_done or 0) + 1
end
status.last_attempt = member
local started = attempt.dial_started_at or attempt.queued_at
status.first_attempt_at = status.first_attempt_at or started
status.last_attempt_at = started
status.dials = (status.dials or 0) + 1
if attempt.callback_skipped then status.callback_skipped = attempt.callback_skipped end
for _, k in ipairs({'sip_code', 'sip_status', 'reason', 'disposition', 'caller_id', 'number'}) do
  status['last_' .. k] = attempt[k]
end
if attempt.answered_at then
  status.answered_at = attempt.answered_at
  status.talk_s = attempt.talk_s
  status.sip_call_id = attempt.sip_call_id
  status.result = ARGV[12] ~= '' and member or status.result
end

local campaign_state = redis.call('HGET', KEYS[8], 'state')
if verdict == 'pause' then
  if campaign_state == 'running' then
    redis.call('HSET', KEYS[8], 'state', 'paused', 'pause_reason', ARGV[11])
    redis.call('SREM', KEYS[9], cid)
  end
  verdict = 'requeue'
end
if verdict == 'callback' then
  if (status.callbacks or 0) >= tonumber(ARGV[13] ~= '' and ARGV[13] or '0') then
    verdict = 'final'
    status.callback_skipped = 'max_callbacks reached'
  else
    status.callbacks = (status.callbacks or 0) + 1
    status.callback_pending = true
    status.callback_due_at = tonumber(ARGV[8])
  end
end
if verdict ~= 'final' then
  if campaign_state == 'cancelled' then
    verdict, outcome = 'final', 'cancelled'
  elseif verdict == 'retry' and status.attempts - (status.number_attempts_from or 0) >= tonumber(ARGV[9]) then
    verdict = 'final'
  end
end
local due_at = tonumber(ARGV[8])
if verdict == 'final' and campaign_state ~= 'cancelled' and (ARGV[14] or '') ~= ''
    and (status.number_index or 0) + 1 < tonumber(ARGV[15])
    and string.find(',' .. ARGV[14] .. ',', ',' .. outcome .. ',', 1, true) then
  local tried = status.number_outcomes or {}
  tried[#tried + 1] = outcome
  status.number_outcomes = tried
  status.number_index = (status.number_index or 0) + 1
  status.number_attempts_from = status.attempts
  verdict, due_at = 'retry', now
end

if verdict == 'final' then
  if status.number_outcomes and outcome ~= 'cancelled' and (ARGV[16] or '') ~= '' then
    local rank, n = {}, 0
    for name in string.gmatch(ARGV[16], '[^,]+') do n = n + 1; rank[name] = n end
    for _, earlier in ipairs(status.number_outcomes) do
      if (rank[earlier] or n + 1) < (rank[outcome] or n + 1) then outcome = earlier end
    end
  end
  status.state = 'final'
  status.outcome = outcome
  status.final_at = now
  redis.call('HSET', KEYS[2], contact, cjson.encode(status))
  redis.call('HINCRBY', KEYS[4], 'final', 1)
  redis.call('HINCRBY', KEYS[4], 'outcome:' .. outcome, 1)
  local final = tonumber(redis.call('HGET', KEYS[4], 'final'))
  local total = tonumber(redis.call('HGET', KEYS[8], 'accepted') or '0')
  if final >= total and (campaign_state == 'running' or campaign_state == 'paused') then
    redis.call('HSET', KEYS[8], 'state', 'completed', 'completed_at', now)
    redis.call('SREM', KEYS[9], cid)
  end
  return 'final:' .. outcome
end
status.state = 'pending'
redis.call('HSET', KEYS[2], contact, cjson.encode(status))
redis.call('ZADD', KEYS[3], due_at, contact)
return 'pending'
