-- Rebuilds an event's seat state from the durable record (PostgreSQL), unless
-- it exists already (or always, when forced). Until it is rebuilt, no hold is
-- answered, so nothing can be taken twice across the rebuild.
-- KEYS: seats, holders, seat_counts, seats_ready, holds, hold_seats, seat_version, seat_log
-- ARGV: force ("1"/"0"), now_ms, then for each live seat: seat, state ("h"/"s"), order, holder
local seats_key, holders_key, seat_counts_key = KEYS[1], KEYS[2], KEYS[3] -- hashes
local seats_ready_key, holds_key, hold_seats_key = KEYS[4], KEYS[5], KEYS[6] -- string, zset, hash
local seat_version_key, seat_log_key = KEYS[7], KEYS[8] -- hash, zset (see seat_log.lua)
local force, now_ms = ARGV[1], ARGV[2]
local first_seat = 3

if force ~= '1' and fence.seats_ready(seats_ready_key) then return 0 end
redis.call('DEL', seats_key, holders_key, seat_counts_key, holds_key, hold_seats_key)
local held, sold = 0, 0
for i = first_seat, #ARGV, 4 do
  local seat, state, order, holder = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('HSET', seats_key, seat, state .. ':' .. order .. ':' .. holder)
  redis.call('HINCRBY', holders_key, holder, 1)
  if state == 's' then
    sold = sold + 1
  else
    held = held + 1
    -- Pending orders are in the record, so their holds are not orphans: dated now.
    local seats = redis.call('HGET', hold_seats_key, order)
    redis.call('HSET', hold_seats_key, order, seats and (seats .. ',' .. seat) or (holder .. '|' .. seat))
    redis.call('ZADD', holds_key, now_ms, order)
  end
end
redis.call('HSET', seat_counts_key, 'held', held, 'sold', sold)
seat_log.restarted(seat_version_key, seat_log_key, now_ms)
redis.call('SET', seats_ready_key, fence.node())
return 1
