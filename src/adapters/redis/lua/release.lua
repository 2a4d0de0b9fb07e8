-- Frees the seats that one order still holds: a seat that has since moved to
-- another order, or been sold, is left alone. Idempotent.
-- KEYS: seats, holders, seat_counts, seats_ready, holds, hold_seats, seat_version, seat_log
-- ARGV: order, holder, seat ids...
local seats_key, holders_key, seat_counts_key = KEYS[1], KEYS[2], KEYS[3] -- hashes
local seats_ready_key, holds_key, hold_seats_key = KEYS[4], KEYS[5], KEYS[6] -- string, zset, hash
local seat_version_key, seat_log_key = KEYS[7], KEYS[8] -- hash, zset (see seat_log.lua)
local order, holder = ARGV[1], ARGV[2]
local first_seat = 3

if not fence.seats_ready(seats_ready_key) then return 0 end
redis.call('ZREM', holds_key, order)
redis.call('HDEL', hold_seats_key, order)
local value = 'h:' .. order .. ':' .. holder
local freed = {}
for i = first_seat, #ARGV do
  if redis.call('HGET', seats_key, ARGV[i]) == value then
    redis.call('HDEL', seats_key, ARGV[i])
    freed[#freed + 1] = ARGV[i]
  end
end
if #freed > 0 then
  if redis.call('HINCRBY', holders_key, holder, -#freed) <= 0 then redis.call('HDEL', holders_key, holder) end
  redis.call('HINCRBY', seat_counts_key, 'held', -#freed)
  seat_log.changed(seat_version_key, seat_log_key, freed)
end
return #freed
