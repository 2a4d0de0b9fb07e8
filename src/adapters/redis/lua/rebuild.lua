-- Rebuilds an event's seat state from the durable record (PostgreSQL), unless
-- it exists already (or always, when forced). Until it is rebuilt, no hold is
-- answered, so nothing can be taken twice across the rebuild.
-- KEYS: seats, holders, counts, ready
-- ARGV: force ("1"/"0"), then for each live seat: seat, state ("h"/"s"), order, holder
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local held, sold = 0, 0
for i = 2, #ARGV, 4 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ':' .. ARGV[i + 2] .. ':' .. ARGV[i + 3])
  redis.call('HINCRBY', KEYS[2], ARGV[i + 3], 1)
  if ARGV[i + 1] == 's' then sold = sold + 1 else held = held + 1 end
end
redis.call('HSET', KEYS[3], 'held', held, 'sold', sold)
redis.call('SET', KEYS[4], '1')
return 1
