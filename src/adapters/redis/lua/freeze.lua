-- Closes the pre-queue when the sale opens (if a join has not already done so).
-- KEYS: line (hash), log (list), failed (set)
-- Returns: { prequeue_size, pre-queue keys whose join failed... } | { "lost" }
if redis.call('HEXISTS', KEYS[1], 'limit') == 0 then return { 'lost' } end
local prequeue = redis.call('HGET', KEYS[1], 'prequeue')
if not prequeue then
  prequeue = redis.call('HGET', KEYS[1], 'preseq') or '0'
  redis.call('HSET', KEYS[1], 'prequeue', prequeue)
  redis.call('RPUSH', KEYS[2], 'z:' .. prequeue)
end
local reply = { prequeue }
for _, key in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if string.sub(key, 1, 1) == 'p' then reply[#reply + 1] = key end
end
return reply
