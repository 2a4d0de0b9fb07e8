-- Holds every requested seat for one order, or none: checks that the pass is
-- still valid, that each seat is free and that the holder stays within its
-- limit (pending and paid seats count), all in one atomic step.
-- Each hold is also recorded (when, by whom, which seats), so that a hold whose
-- order never reached the record (a crash in between) can be found and undone.
-- KEYS: seats, holders, seat_counts, seats_ready, active, holds, hold_seats, line, unknown_passes, honoured_passes, seat_version, seat_log
-- ARGV: order, holder, pass key, max per holder, now_ms, pass issued at ms, pass expires at ms, seat ids...
-- Returns: {"held", held, sold} | {"taken", seat...} | {"limit"} | {"pass"} | {"rebuild"} | {"lost"}
-- seats: hash seat -> "h|s:<order>:<holder>"; holders: hash holder -> seats; seat_counts: hash held, sold
local seats_key, holders_key, seat_counts_key = KEYS[1], KEYS[2], KEYS[3]
-- seats_ready: string; active: zset pass key -> expiry ms; holds: zset order -> held at ms
local seats_ready_key, active_key, holds_key = KEYS[4], KEYS[5], KEYS[6]
-- hold_seats: hash order -> "<holder>|<seat>,<seat>..."; line: hash
local hold_seats_key, line_key = KEYS[7], KEYS[8]
-- unknown_passes: hash expires_at_ms -> count; honoured_passes: set of pass keys
local unknown_passes_key, honoured_passes_key = KEYS[9], KEYS[10]
-- seat_version: hash; seat_log: zset (see seat_log.lua)
local seat_version_key, seat_log_key = KEYS[11], KEYS[12]
local order, holder, pass_key, max_per_holder = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now, issued_at_ms, expires_at_ms = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local first_seat = 8

if not fence.seats_ready(seats_ready_key) then return { 'rebuild' } end
if fence.line_lost(line_key) then return { 'lost' } end
local pass = redis.call('ZSCORE', active_key, pass_key)
if not pass and fence.honour_pass(line_key, unknown_passes_key, honoured_passes_key, pass_key,
    issued_at_ms, tonumber(expires_at_ms), now) then
  -- Counted under max_active from now on as any other pass.
  pass = expires_at_ms
  redis.call('ZADD', active_key, pass, pass_key)
end
if not pass or tonumber(pass) <= now then return { 'pass' } end

local taken = { 'taken' }
for i = first_seat, #ARGV do
  if redis.call('HEXISTS', seats_key, ARGV[i]) == 1 then taken[#taken + 1] = ARGV[i] end
end
if #taken > 1 then return taken end

local count = #ARGV - first_seat + 1
local owned = tonumber(redis.call('HGET', holders_key, holder) or '0')
if owned + count > max_per_holder then return { 'limit' } end

local value = 'h:' .. order .. ':' .. holder
local seats = {}
for i = first_seat, #ARGV do
  redis.call('HSET', seats_key, ARGV[i], value)
  seats[#seats + 1] = ARGV[i]
end
redis.call('ZADD', holds_key, now, order)
redis.call('HSET', hold_seats_key, order, holder .. '|' .. table.concat(seats, ','))
redis.call('HINCRBY', holders_key, holder, count)
seat_log.changed(seat_version_key, seat_log_key, seats)
local held = redis.call('HINCRBY', seat_counts_key, 'held', count)
return { 'held', tostring(held), redis.call('HGET', seat_counts_key, 'sold') or '0' }
