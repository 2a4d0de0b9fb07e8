-- Holds every requested seat for one order, or none: checks that the pass is
-- still valid, that each seat is free and that the holder stays within its
-- limit (pending and paid seats count), all in one atomic step.
-- Each hold is also recorded (when, by whom, which seats), so that a hold whose
-- order never reached the record (a crash in between) can be found and undone.
-- KEYS: seats (hash seat -> "h|s:<order>:<holder>"), holders (hash holder -> seats),
--       counts (hash held, sold), ready (string), active (zset pass key -> expiry ms),
--       holds (zset order -> held at ms), hold_seats (hash order -> "<holder>|<seat>,<seat>..."),
--       line (hash), unknown passes (zset)
-- ARGV: order, holder, pass key, max per holder, now_ms, pass issued at ms, pass expires at ms, seat ids...
-- Returns: {"held", held, sold} | {"taken", seat...} | {"limit"} | {"pass"} | {"rebuild"} | {"lost"}
if redis.call('EXISTS', KEYS[4]) == 0 then return { 'rebuild' } end
if redis.call('HEXISTS', KEYS[8], 'limit') == 0 then return { 'lost' } end
local now = tonumber(ARGV[5])
local pass = redis.call('ZSCORE', KEYS[5], ARGV[3])
local restored = tonumber(redis.call('HGET', KEYS[8], 'restored_at') or '0')
if not pass and tonumber(ARGV[6]) < restored and tonumber(ARGV[7]) > now then
  -- Issued before the store lost the line: honoured, and counted under max_active
  -- in place of one of the passes the restore could not name.
  pass = ARGV[7]
  redis.call('ZADD', KEYS[5], pass, ARGV[3])
  local stand_in = redis.call('ZRANGEBYSCORE', KEYS[9], pass, '+inf', 'LIMIT', 0, 1)[1]
  if stand_in then redis.call('ZREM', KEYS[9], stand_in) end
end
if not pass or tonumber(pass) <= now then return { 'pass' } end

local taken = { 'taken' }
for i = 8, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then taken[#taken + 1] = ARGV[i] end
end
if #taken > 1 then return taken end

local count = #ARGV - 7
local owned = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if owned + count > tonumber(ARGV[4]) then return { 'limit' } end

local value = 'h:' .. ARGV[1] .. ':' .. ARGV[2]
local seats = {}
for i = 8, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], value)
  seats[#seats + 1] = ARGV[i]
end
redis.call('ZADD', KEYS[6], now, ARGV[1])
redis.call('HSET', KEYS[7], ARGV[1], ARGV[2] .. '|' .. table.concat(seats, ','))
redis.call('HINCRBY', KEYS[2], ARGV[2], count)
local held = redis.call('HINCRBY', KEYS[3], 'held', count)
return { 'held', tostring(held), redis.call('HGET', KEYS[3], 'sold') or '0' }
