-- Store one chunk of accepted-looking rows atomically.
-- KEYS: contacts hash, numbers hash (number -> contact id), due zset, dnc set
-- ARGV: triples of (contact id, numbers, contact json); numbers are the contact's numbers in
--       dialing order, comma separated, each the E.164 form with ";ext=<digits>" after it for
--       an extension (two extensions of one line are two people; the do-not-call list holds
--       whole lines)
-- Returns one string per row, one letter per number: A kept, D duplicate (an earlier contact
-- has it), S suppressed (DNC). A row with at least one A is stored; the caller rewrites the
-- json of a stored row that lost some numbers.
-- An accepted contact's first due time is its row number (seconds after the epoch):
-- due at once, and dialed in file order.
local out = {}
for i = 1, #ARGV, 3 do
  local id, numbers, json = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local letters, kept = {}, false
  for number in string.gmatch(numbers, '[^,]+') do
    if redis.call('SISMEMBER', KEYS[4], string.match(number, '^[^;]+')) == 1 then
      letters[#letters + 1] = 'S'
    elseif redis.call('HSETNX', KEYS[2], number, id) == 0 then
      letters[#letters + 1] = 'D'
    else
      letters[#letters + 1] = 'A'
      kept = true
    end
  end
  if kept then
    redis.call('HSET', KEYS[1], id, json)
    redis.call('ZADD', KEYS[3], id, id)
  end
  out[#out + 1] = table.concat(letters)
end
return out
