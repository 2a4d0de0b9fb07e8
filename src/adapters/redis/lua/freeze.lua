-- Closes the pre-queue when the sale opens (if a join has not already done so).
-- KEYS: line, log, failed
-- Returns: { prequeue_size, pre-queue keys whose join failed... } | { "lost" }
local line_key, log_key, failed_key = KEYS[1], KEYS[2], KEYS[3] -- hash, list, set

if fence.line_lost(line_key) then return { 'lost' } end
local prequeue = redis.call('HGET', line_key, 'prequeue')
if not prequeue then
  prequeue = redis.call('HGET', line_key, 'preseq') or '0'
  redis.call('HSET', line_key, 'prequeue', prequeue)
  redis.call('RPUSH', log_key, log_entry.frozen(prequeue))
end
local reply = { prequeue }
for _, key in ipairs(redis.call('SMEMBERS', failed_key)) do
  if string.sub(key, 1, 1) == 'p' then reply[#reply + 1] = key end
end
return reply
