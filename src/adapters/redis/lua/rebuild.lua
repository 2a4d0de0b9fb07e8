-- Rebuilds an event's seat state from the durable record (PostgreSQL), unless
-- it exists already (or always, when forced). Until it is rebuilt, no hold is
-- answered, so nothing can be taken twice across the rebuild.
-- KEYS: seats, holders, counts, ready, holds (zset), hold_seats (hash)
-- ARGV: force ("1"/"0"), now_ms, then for each live seat: seat, state ("h"/"s"), order, holder
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5], KEYS[6])
local held, sold = 0, 0
for i = 3, #ARGV, 4 do
  local seat, state, order, holder = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('HSET', KEYS[1], seat, state .. ':' .. order .. ':' .. holder)
  redis.call('HINCRBY', KEYS[2], holder, 1)
  if state == 's' then
    sold = sold + 1
  else
    held = held + 1
    -- Pending orders are in the record, so their holds are not orphans: dated now.
    local seats = redis.call('HGET', KEYS[6], order)
    redis.call('HSET', KEYS[6], order, seats and (seats .. ',' .. seat) or (holder .. '|' .. seat))
    redis.call('ZADD', KEYS[5], ARGV[2], order)
  end
end
redis.call('HSET', KEYS[3], 'held', held, 'sold', sold)
redis.call('SET', KEYS[4], '1')
return 1
