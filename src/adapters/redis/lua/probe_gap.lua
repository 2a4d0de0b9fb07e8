-- What is known of a place the admission worker has not received.
-- KEYS: line (hash), failed (set), seen (hash)
-- ARGV[1]: token key ("r<seq>" or "p<seq>"); ARGV[2]: its seq; ARGV[3]: its counter ("seq" or "preseq")
-- Returns: {"unallocated"} | {"failed"} | {"pending", allocated or last seen (unix seconds)}
if tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '0') < tonumber(ARGV[2]) then
  return { 'unallocated' }
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return { 'failed' }
end
-- A restored line lost what was seen: its places count as seen when it was restored.
local seen = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local restored_s = math.floor(tonumber(redis.call('HGET', KEYS[1], 'restored_at') or '0') / 1000)
return { 'pending', tostring(math.max(seen, restored_s)) }
