-- Frees the seats that one order still holds: a seat that has since moved to
-- another order, or been sold, is left alone. Idempotent.
-- KEYS: seats, holders, counts, ready, holds (zset), hold_seats (hash)
-- ARGV: order, holder, seat ids...
if redis.call('EXISTS', KEYS[4]) == 0 then return 0 end
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
local value = 'h:' .. ARGV[1] .. ':' .. ARGV[2]
local freed = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == value then
    redis.call('HDEL', KEYS[1], ARGV[i])
    freed = freed + 1
  end
end
if freed > 0 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -freed) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
  redis.call('HINCRBY', KEYS[3], 'held', -freed)
end
return freed
