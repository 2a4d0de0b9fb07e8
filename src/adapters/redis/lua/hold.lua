-- Holds every requested seat for one order, or none: checks that the pass is
-- still valid, that each seat is free and that the holder stays within its
-- limit (pending and paid seats count), all in one atomic step.
-- Each hold is also recorded (when, by whom, which seats), so that a hold whose
-- order never reached the record (a crash in between) can be found and undone.
-- KEYS: seats (hash seat -> "h|s:<order>:<holder>"), holders (hash holder -> seats),
--       counts (hash held, sold), ready (string), active (zset pass key -> expiry ms),
--       holds (zset order -> held at ms), hold_seats (hash order -> "<holder>|<seat>,<seat>..."),
--       line (hash), unknown passes (hash expires_at_ms -> count), honoured (set of pass keys)
-- ARGV: order, holder, pass key, max per holder, now_ms, pass issued at ms, pass expires at ms, seat ids...
-- Returns: {"held", held, sold} | {"taken", seat...} | {"limit"} | {"pass"} | {"rebuild"} | {"lost"}
if redis.call('EXISTS', KEYS[4]) == 0 then return { 'rebuild' } end
if redis.call('HEXISTS', KEYS[8], 'limit') == 0 then return { 'lost' } end
local now = tonumber(ARGV[5])
local pass = redis.call('ZSCORE', KEYS[5], ARGV[3])
local restored = tonumber(redis.call('HGET', KEYS[8], 'restored_at') or '0')
local expires = tonumber(ARGV[7])
if not pass and tonumber(ARGV[6]) < restored and expires > now and redis.call('SADD', KEYS[10], ARGV[3]) == 1 then
  -- Issued before the store lost the line: honoured once (a pass ended after
  -- that stays ended), and counted under max_active in place of the stand-in
  -- that expires soonest at or after it.
  pass = ARGV[7]
  redis.call('ZADD', KEYS[5], pass, ARGV[3])
  local stand_in
  local stand_ins = redis.call('HGETALL', KEYS[9])
  for i = 1, #stand_ins, 2 do
    local at = tonumber(stand_ins[i])
    if at >= expires and (not stand_in or at < tonumber(stand_in)) then stand_in = stand_ins[i] end
  end
  if stand_in and redis.call('HINCRBY', KEYS[9], stand_in, -1) <= 0 then redis.call('HDEL', KEYS[9], stand_in) end
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
