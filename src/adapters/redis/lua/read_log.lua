-- One page of an event's log, with the line's epoch (it changes when a lost
-- line is restored and its log starts again), whether the line is lost, and
-- whether it was ever restored (its log then starts at the restore).
-- KEYS: line, log
-- ARGV[1], ARGV[2]: first and last index
-- Returns: { epoch, "lost" or "", "restored" or "", entries... }
local line_key, log_key = KEYS[1], KEYS[2] -- hash, list
local first_index, last_index = ARGV[1], ARGV[2]

local line = redis.call('HMGET', line_key, 'epoch', 'restored_at')
local reply = { line[1] or '', fence.line_lost(line_key) and 'lost' or '', line[2] and 'restored' or '' }
for _, entry in ipairs(redis.call('LRANGE', log_key, first_index, last_index)) do
  reply[#reply + 1] = entry
end
return reply
