-- Webhook events of an attempt's ending, committed in the same step as the ending itself.
-- The Store runs this with finalise.lua wrapped as the function `finalise_body` above it, so
-- finalise.lua stays as it is; the same KEYS and ARGV, plus one key at the end:
-- KEYS[#KEYS] the webhook outbox list. Campaigns whose hash has no `webhook_events` field (no
-- webhooks) pay one HGET and write nothing.
-- An event is written exactly when finalise ended the attempt (its CAS passed), so a finalise run
-- again (a retry through a Redis outage, a late task) never emits twice.
local state_before = redis.call('HGET', KEYS[8], 'state')
local reply = finalise_body()
local wanted = redis.call('HGET', KEYS[8], 'webhook_events')
if not wanted or wanted == '' then return reply end
local final = string.sub(reply, 1, 6) == 'final:'
if not (final or reply == 'pending') then return reply end

local cid, member, now = ARGV[1], ARGV[2], tonumber(ARGV[4])
local attempt = cjson.decode(redis.call('HGET', KEYS[1], member))
local outcome = final and string.sub(reply, 7) or ARGV[6]
local function emit(kind)
  if string.find(',' .. wanted .. ',', ',' .. kind .. ',', 1, true) then
    redis.call('RPUSH', KEYS[#KEYS], cjson.encode({type = kind, campaign_id = cid, member = member,
      contact = attempt.contact, outcome = outcome, at = now}))
  end
end
if attempt.invite_sent ~= false then emit('call.completed') end
if ARGV[6] == 'opted_out' and ARGV[12] ~= '' then emit('contact.opted_out') end
if final then emit('contact.finalized') end
if state_before ~= 'completed' and redis.call('HGET', KEYS[8], 'state') == 'completed' then
  emit('campaign.completed')
end
return reply
