-- What is known of a regular place the admission worker has not received.
-- KEYS: line (hash), failed (set)
-- ARGV[1]: token key "r<seq>"; ARGV[2]: its seq
-- Returns: "unallocated" | "failed" | "pending"
if tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') < tonumber(ARGV[2]) then
  return 'unallocated'
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return 'failed'
end
return 'pending'
