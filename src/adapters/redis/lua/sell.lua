-- Turns one order's held seats into sold seats, only if the order still holds
-- every one of them. Idempotent: seats already sold to this order stay sold.
-- KEYS: seats, seat_counts, seats_ready, holds, hold_seats, seat_version, seat_log
-- ARGV: order, holder, seat ids...
-- Returns: "sold" | "lost" | "rebuild"
local seats_key, seat_counts_key, seats_ready_key = KEYS[1], KEYS[2], KEYS[3] -- hash, hash, string
local holds_key, hold_seats_key = KEYS[4], KEYS[5] -- zset, hash
local seat_version_key, seat_log_key = KEYS[6], KEYS[7] -- hash, zset (see seat_log.lua)
local order, holder = ARGV[1], ARGV[2]
local first_seat = 3

if not fence.seats_ready(seats_ready_key) then return 'rebuild' end
local held = 'h:' .. order .. ':' .. holder
local sold = 's:' .. order .. ':' .. holder
for i = first_seat, #ARGV do
  local v = redis.call('HGET', seats_key, ARGV[i])
  if v ~= held and v ~= sold then return 'lost' end
end
local moved = {}
for i = first_seat, #ARGV do
  if redis.call('HGET', seats_key, ARGV[i]) == held then
    redis.call('HSET', seats_key, ARGV[i], sold)
    moved[#moved + 1] = ARGV[i]
  end
end
redis.call('ZREM', holds_key, order)
redis.call('HDEL', hold_seats_key, order)
-- A repeated payment moves nothing; Redis refuses HINCRBY by "-0".
if #moved > 0 then
  redis.call('HINCRBY', seat_counts_key, 'held', -#moved)
  redis.call('HINCRBY', seat_counts_key, 'sold', #moved)
  seat_log.changed(seat_version_key, seat_log_key, moved)
end
return 'sold'
