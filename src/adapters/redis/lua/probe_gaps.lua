-- What is known of each place the admission worker has not received.
-- KEYS: line, failed, seen
-- ARGV: token keys ("r<seq>" or "p<seq>")
-- Returns, per key: "unallocated" | "failed" | "pending:<allocated or last seen, unix seconds>"
local line_key, failed_key, seen_key = KEYS[1], KEYS[2], KEYS[3] -- hash, set, hash

local counters = redis.call('HMGET', line_key, 'seq', 'preseq', 'restored_at')
local allocated = { r = tonumber(counters[1] or '0'), p = tonumber(counters[2] or '0') }
-- A restored line lost what was seen: its places count as seen when it was restored.
local restored_s = math.floor(tonumber(counters[3] or '0') / 1000)
local reply = {}
for i, key in ipairs(ARGV) do
  if allocated[string.sub(key, 1, 1)] < tonumber(string.sub(key, 2)) then
    reply[i] = 'unallocated'
  elseif redis.call('SISMEMBER', failed_key, key) == 1 then
    reply[i] = 'failed'
  else
    local seen = tonumber(redis.call('HGET', seen_key, key) or '0')
    reply[i] = 'pending:' .. math.max(seen, restored_s)
  end
end
return reply
