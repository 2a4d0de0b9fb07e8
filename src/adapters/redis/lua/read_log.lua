-- One page of an event's log, with the line's epoch (it changes when a lost
-- line is restored and its log starts again), whether the line is lost, and
-- whether it was ever restored (its log then starts at the restore).
-- KEYS: line (hash), log (list)
-- ARGV[1], ARGV[2]: first and last index
-- Returns: { epoch, "lost" or "", "restored" or "", entries... }
local line = redis.call('HMGET', KEYS[1], 'epoch', 'limit', 'restored_at')
local reply = { line[1] or '', line[2] and '' or 'lost', line[3] and 'restored' or '' }
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], ARGV[1], ARGV[2])) do
  reply[#reply + 1] = entry
end
return reply
