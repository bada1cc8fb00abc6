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

local rows, all = {}, {}
for i = 1, #ARGV, 3 do
  local numbers = {}
  for number in string.gmatch(ARGV[i + 1], '[^,]+') do
    numbers[#numbers + 1] = number
    all[#all + 1] = number
  end
  rows[#rows + 1] = {id = ARGV[i], json = ARGV[i + 2], numbers = numbers}
end
local known = {}
if #all > 0 then
  known = call_sliced('HMGET', KEYS[2], all)
end
local check_dnc = redis.call('SCARD', KEYS[4]) > 0
local out, seen, new_numbers, contacts, due = {}, {}, {}, {}, {}
local k = 0
for r, row in ipairs(rows) do
  local letters, kept = {}, false
  for _, number in ipairs(row.numbers) do
    k = k + 1
    if check_dnc and redis.call('SISMEMBER', KEYS[4], string.match(number, '^[^;]+')) == 1 then
      letters[#letters + 1] = 'S'
    elseif known[k] or seen[number] then
      letters[#letters + 1] = 'D'
    else
      seen[number] = true
      new_numbers[#new_numbers + 1] = number
      new_numbers[#new_numbers + 1] = row.id
      letters[#letters + 1] = 'A'
      kept = true
    end
  end
  if kept then
    contacts[#contacts + 1] = row.id
    contacts[#contacts + 1] = row.json
    due[#due + 1] = row.id
    due[#due + 1] = row.id
  end
  out[r] = table.concat(letters)
end
if #contacts > 0 then
  call_sliced('HSET', KEYS[2], new_numbers)
  call_sliced('HSET', KEYS[1], contacts)
  call_sliced('ZADD', KEYS[3], due)
end
return out
