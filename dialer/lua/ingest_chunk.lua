-- Store one chunk of accepted-looking rows atomically.
-- KEYS: contacts hash, numbers hash (number -> contact id), due zset, dnc set
-- ARGV: triples of (contact id, numbers, contact json); numbers are the contact's numbers in
--       dialing order, comma separated, each the E.164 form with ";ext=<digits>" after it for
--       an extension (two extensions of one line are two people; the do-not-call list holds
--       whole lines)
-- Returns one string: per row, one letter per number (A kept, D duplicate: an earlier contact
-- has it, S suppressed: DNC), the rows' letters joined with commas. A row with at least one A
-- is stored; the caller rewrites the json of a stored row that lost some numbers.
-- An accepted contact's first due time is its row number (seconds after the epoch):
-- due at once, and dialed in file order.
-- Redis is called a few times per chunk, not per row (one HMGET for the numbers seen before,
-- one HSET each for numbers and contacts, one ZADD), and the do-not-call list only when it
-- has numbers: four calls per row were most of an ingest's time.
-- The script's own work was then a quarter of Redis's CPU in an ingest: rows of one number (no
-- comma) are not split, no table is built per row, a call of one slice returns its reply as it
-- is, and the letters come back as one string rather than an array of one per row.

-- unpack() is bounded by Lua's C stack (8,000 values): call in slices well under it
local SLICE = 4000
local function call_sliced(command, key, values)
  if #values <= SLICE then
    return redis.call(command, key, unpack(values))
  end
  local replies = {}
  for first = 1, #values, SLICE do
    local reply = redis.call(command, key, unpack(values, first, math.min(first + SLICE - 1, #values)))
    if type(reply) == 'table' then
      for _, value in ipairs(reply) do replies[#replies + 1] = value end
    end
  end
  return replies
end

local find = string.find
-- Every row's numbers in one list, and how many each row has: most rows have one (no comma).
local all, counts, n = {}, {}, 0
for i = 2, #ARGV, 3 do
  local numbers, count = ARGV[i], 0
  if not find(numbers, ',', 1, true) then
    if numbers ~= '' then
      n = n + 1
      all[n] = numbers
      count = 1
    end
  else
    for number in string.gmatch(numbers, '[^,]+') do
      n = n + 1
      all[n] = number
      count = count + 1
    end
  end
  counts[#counts + 1] = count
end
local known = {}
if n > 0 then
  known = call_sliced('HMGET', KEYS[2], all)
end
local check_dnc = redis.call('SCARD', KEYS[4]) > 0
local seen, new_numbers, new_count = {}, {}, 0

-- The letter of one number of the row ``id``; a kept number is added to the numbers hash.
local function letter(number, known_before, id)
  if check_dnc and redis.call('SISMEMBER', KEYS[4], string.match(number, '^[^;]+')) == 1 then
    return 'S'
  end
  if known_before or seen[number] then
    return 'D'
  end
  seen[number] = true
  new_numbers[new_count + 1] = number
  new_numbers[new_count + 2] = id
  new_count = new_count + 2
  return 'A'
end

local out, contacts, due, stored, k = {}, {}, {}, 0, 0
for r = 1, #counts do
  local i = 3 * r - 2
  local id, count, letters = ARGV[i], counts[r], ''
  if count == 1 then
    k = k + 1
    letters = letter(all[k], known[k], id)
  elseif count > 1 then
    local parts = {}
    for j = 1, count do
      k = k + 1
      parts[j] = letter(all[k], known[k], id)
    end
    letters = table.concat(parts)
  end
  if find(letters, 'A', 1, true) then
    contacts[stored + 1] = id
    contacts[stored + 2] = ARGV[i + 2]
    due[stored + 1] = id
    due[stored + 2] = id
    stored = stored + 2
  end
  out[r] = letters
end
if stored > 0 then
  call_sliced('HSET', KEYS[2], new_numbers)
  call_sliced('HSET', KEYS[1], contacts)
  call_sliced('ZADD', KEYS[3], due)
end
return table.concat(out, ',')
