-- Publishes the pre-queue draw once; a worker that takes over keeps the first.
-- KEYS: draw (string), log (list)
-- ARGV[1]: the draw, little-endian u32 ranks indexed by pre-queue sequence number
-- Returns: the draw in force
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], 'd')
return ARGV[1]
