-- contact.finalized events of the contacts a cancel finalises, in the same atomic step.
-- The Store runs this with cancel.lua wrapped as the function `cancel_body` above it (cancel.lua
-- stays as it is); the same KEYS and ARGV, plus KEYS[#KEYS], the webhook outbox list.
local wanted = redis.call('HGET', KEYS[4], 'webhook_events')
if not wanted or not string.find(',' .. wanted .. ',', ',contact.finalized,', 1, true) then
  return cancel_body()
end
-- The contacts cancel.lua is about to take: the head of the due set, as it reads it.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local cid = redis.call('HGET', KEYS[4], 'id')
local reply = cancel_body()
for _, id in ipairs(ids) do
  redis.call('RPUSH', KEYS[#KEYS], cjson.encode({type = 'contact.finalized', campaign_id = cid, member = '',
    contact = tonumber(id), outcome = 'cancelled', at = tonumber(ARGV[1])}))
end
return reply
