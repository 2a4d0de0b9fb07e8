-- What is known of each place the admission worker has not received.
-- KEYS: line (hash), failed (set), seen (hash)
-- ARGV: token keys ("r<seq>" or "p<seq>")
-- Returns, per key: "unallocated" | "failed" | "pending:<allocated or last seen, unix seconds>"
local counters = redis.call('HMGET', KEYS[1], 'seq', 'preseq', 'restored_at')
local allocated = { r = tonumber(counters[1] or '0'), p = tonumber(counters[2] or '0') }
-- A restored line lost what was seen: its places count as seen when it was restored.
local restored_s = math.floor(tonumber(counters[3] or '0') / 1000)
local reply = {}
for i, key in ipairs(ARGV) do
  if allocated[string.sub(key, 1, 1)] < tonumber(string.sub(key, 2)) then
    reply[i] = 'unallocated'
  elseif redis.call('SISMEMBER', KEYS[2], key) == 1 then
    reply[i] = 'failed'
  else
    local seen = tonumber(redis.call('HGET', KEYS[3], key) or '0')
    reply[i] = 'pending:' .. math.max(seen, restored_s)
  end
end
return reply
