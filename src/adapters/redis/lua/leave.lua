-- Takes a token out of the line: ends its pass if it holds one, else marks it
-- left so that admission skips it and everyone behind moves up.
-- KEYS: line (hash), active (zset), left (set), log (list)
-- ARGV[1]: token key; ARGV[2]: its rank, or "" while the draw has not placed it
-- Returns: "left" | "ended" | "gone"
local key, rank = ARGV[1], ARGV[2]
if redis.call('ZREM', KEYS[2], key) == 1 then
  redis.call('RPUSH', KEYS[4], 'e:' .. key)
  return 'ended'
end
if redis.call('SISMEMBER', KEYS[3], key) == 1 then
  return 'gone'
end
local consumed = tonumber(redis.call('HGET', KEYS[1], 'consumed') or '0')
if rank ~= '' and tonumber(rank) <= consumed then
  return 'gone'
end
redis.call('SADD', KEYS[3], key)
redis.call('HINCRBY', KEYS[1], 'left_waiting', 1)
redis.call('RPUSH', KEYS[4], 'l:' .. key)
return 'left'
