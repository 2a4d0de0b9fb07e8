-- Raises the reservation that allocation stays within, never lowering it. A
-- lost line is left lost: a reservation alone would let counters restart at 0.
-- KEYS: line (hash)
-- ARGV[1]: "limit" (regular) or "prelimit" (pre-queue); ARGV[2]: places reserved
if redis.call('HEXISTS', KEYS[1], 'limit') == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
