-- Publishes the pre-queue draw once; a worker that takes over keeps the first.
-- KEYS: draw, log
-- ARGV[1]: the draw, little-endian u32 ranks indexed by pre-queue sequence number
-- Returns: the draw in force
local draw_key, log_key = KEYS[1], KEYS[2] -- string, list
local draw = ARGV[1]

local existing = redis.call('GET', draw_key)
if existing then return existing end
redis.call('SET', draw_key, draw)
redis.call('RPUSH', log_key, log_entry.drawn())
return draw
