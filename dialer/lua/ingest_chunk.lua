-- Store one chunk of accepted-looking rows atomically.
-- KEYS: contacts hash, numbers hash (number -> contact id), due zset, dnc set
-- ARGV: triples of (contact id, number, contact json); the number is the E.164 form, with
--       ";ext=<digits>" after it for an extension (two extensions of one line are two people;
--       the do-not-call list holds whole lines)
-- Returns one letter per row: A accepted, D duplicate, S suppressed (DNC).
-- An accepted contact's first due time is its row number (seconds after the epoch):
-- due at once, and dialed in file order.
local out = {}
for i = 1, #ARGV, 3 do
  local id, e164, json = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('SISMEMBER', KEYS[4], string.match(e164, '^[^;]+')) == 1 then
    out[#out + 1] = 'S'
  elseif redis.call('HSETNX', KEYS[2], e164, id) == 0 then
    out[#out + 1] = 'D'
  else
    redis.call('HSET', KEYS[1], id, json)
    redis.call('ZADD', KEYS[3], id, id)
    out[#out + 1] = 'A'
  end
end
return table.concat(out)
