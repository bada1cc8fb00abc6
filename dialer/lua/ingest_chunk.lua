-- Store one chunk of accepted-looking rows atomically.
-- KEYS: contacts hash, numbers hash (number -> contact id), due zset, dnc set
-- ARGV: triples of (contact id, number, contact json); the number is the E.164 form, with
--       ";ext=<digits>" after it for an extension (two extensions of one line are two people;
--       the do-not-call list holds whole lines)
-- Returns one letter per row: A accepted, D duplicate, S suppressed (DNC).
-- An accepted contact's first due time is its row number (seconds after the epoch):
-- due at once, and dialed in file order.
-- Redis is called a few times per chunk, not per row (one HMGET for the numbers seen before,
-- one HSET each for numbers and contacts, one ZADD), and the do-not-call list only when it
-- has numbers: four calls per row were most of an ingest's time.

-- unpack() is bounded by Lua's C stack (8,000 values): call in slices well under it
local SLICE = 4000
local function call_sliced(command, key, values)
  local replies = {}
  for first = 1, #values, SLICE do
    local reply = redis.call(command, key, unpack(values, first, math.min(first + SLICE - 1, #values)))
    if type(reply) == 'table' then
      for _, value in ipairs(reply) do replies[#replies + 1] = value end
    end
  end
  return replies
end

local numbers = {}
for i = 1, #ARGV, 3 do
  numbers[#numbers + 1] = ARGV[i + 1]
end
local known = {}
if #numbers > 0 then
  known = call_sliced('HMGET', KEYS[2], numbers)
end
local check_dnc = redis.call('SCARD', KEYS[4]) > 0
local out, seen, new_numbers, contacts, due = {}, {}, {}, {}, {}
for row = 1, #numbers do
  local i = row * 3 - 2
  local id, e164, json = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if check_dnc and redis.call('SISMEMBER', KEYS[4], string.match(e164, '^[^;]+')) == 1 then
    out[row] = 'S'
  elseif known[row] or seen[e164] then
    out[row] = 'D'
  else
    seen[e164] = true
    new_numbers[#new_numbers + 1] = e164
    new_numbers[#new_numbers + 1] = id
    contacts[#contacts + 1] = id
    contacts[#contacts + 1] = json
    due[#due + 1] = id
    due[#due + 1] = id
    out[row] = 'A'
  end
end
if #contacts > 0 then
  call_sliced('HSET', KEYS[2], new_numbers)
  call_sliced('HSET', KEYS[1], contacts)
  call_sliced('ZADD', KEYS[3], due)
end
return table.concat(out)
