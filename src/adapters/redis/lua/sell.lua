-- Turns one order's held seats into sold seats, only if the order still holds
-- every one of them. Idempotent: seats already sold to this order stay sold.
-- KEYS: seats, counts, ready, holds (zset), hold_seats (hash)
-- ARGV: order, holder, seat ids...
-- Returns: "sold" | "lost" | "rebuild"
if redis.call('EXISTS', KEYS[3]) == 0 then return 'rebuild' end
local held = 'h:' .. ARGV[1] .. ':' .. ARGV[2]
local sold = 's:' .. ARGV[1] .. ':' .. ARGV[2]
for i = 3, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v ~= held and v ~= sold then return 'lost' end
end
local moved = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == held then
    redis.call('HSET', KEYS[1], ARGV[i], sold)
    moved = moved + 1
  end
end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
-- A repeated payment moves nothing; Redis refuses HINCRBY by "-0".
if moved > 0 then
  redis.call('HINCRBY', KEYS[2], 'held', -moved)
  redis.call('HINCRBY', KEYS[2], 'sold', moved)
end
return 'sold'
