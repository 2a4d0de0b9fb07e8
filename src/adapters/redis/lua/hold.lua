-- Holds seats for a group of orders, one after the other, each in full or not
-- at all: for each order, checks that its pass is still valid, that each seat
-- is free (also of the group's earlier orders) and that the holder stays
-- within its limit (pending and paid seats count); the whole group is one
-- atomic step. Holds arrive in groups because a group costs Redis one call
-- and one new version of the seat map, not one per order.
-- Each hold is also recorded (when, by whom, which seats), so that a hold whose
-- order never reached the record (a crash in between) can be found and undone.
-- KEYS: seats, holders, seat_counts, seats_ready, active, holds, hold_seats, line, unknown_passes, honoured_passes, seat_version, seat_log
-- ARGV: per order: order, holder, pass key, max per holder, now_ms, pass issued
--   at ms, pass expires at ms, seat count, then that many seat ids
-- Returns: {"rebuild"} | {"lost"} | {held, sold, then per order "held" |
--   "limit" | "pass" | "taken", the number of seats that follow, seat ids (the
--   taken ones)}, held and sold counted after the whole group
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

if not fence.seats_ready(seats_ready_key) then return { 'rebuild' } end
if fence.line_lost(line_key) then return { 'lost' } end

-- Holds `seats` for one order, or answers why not.
local function hold(order, holder, pass_key, max_per_holder, now, issued_at_ms, expires_at_ms, seats)
  local pass = redis.call('ZSCORE', active_key, pass_key)
  if not pass and fence.honour_pass(line_key, unknown_passes_key, honoured_passes_key, pass_key,
      issued_at_ms, tonumber(expires_at_ms), now) then
    -- Counted under max_active from now on as any other pass.
    pass = expires_at_ms
    redis.call('ZADD', active_key, pass, pass_key)
  end
  if not pass or tonumber(pass) <= now then return 'pass', {} end

  local taken = {}
  for _, seat in ipairs(seats) do
    if redis.call('HEXISTS', seats_key, seat) == 1 then taken[#taken + 1] = seat end
  end
  if #taken > 0 then return 'taken', taken end

  local owned = tonumber(redis.call('HGET', holders_key, holder) or '0')
  if owned + #seats > max_per_holder then return 'limit', {} end

  local value = 'h:' .. order .. ':' .. holder
  for _, seat in ipairs(seats) do redis.call('HSET', seats_key, seat, value) end
  redis.call('ZADD', holds_key, now, order)
  redis.call('HSET', hold_seats_key, order, holder .. '|' .. table.concat(seats, ','))
  redis.call('HINCRBY', holders_key, holder, #seats)
  -- Counted with each hold: should a later one fail, this one is counted as made.
  redis.call('HINCRBY', seat_counts_key, 'held', #seats)
  return 'held', {}
end

local answers, changed = {}, {}
local at = 1
while at <= #ARGV do
  local count = tonumber(ARGV[at + 7])
  local seats = {}
  for i = 1, count do seats[i] = ARGV[at + 7 + i] end
  local outcome, listed = hold(ARGV[at], ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3]),
    tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]), ARGV[at + 6], seats)
  if outcome == 'held' then
    for _, seat in ipairs(seats) do changed[#changed + 1] = seat end
  end
  answers[#answers + 1] = outcome
  answers[#answers + 1] = tostring(#listed)
  for _, seat in ipairs(listed) do answers[#answers + 1] = seat end
  at = at + 8 + count
end

seat_log.changed(seat_version_key, seat_log_key, changed)
local counts = redis.call('HMGET', seat_counts_key, 'held', 'sold')
local reply = { counts[1] or '0', counts[2] or '0' }
for _, answer in ipairs(answers) do reply[#reply + 1] = answer end
return reply
