-- The line's counters and how many passes are active, read at one instant: a
-- restore (start_line.lua) replaces the active passes and their stand-ins
-- together, and reads on either side of it could count a pass twice.
-- KEYS: line, active, unknown_passes
-- ARGV: now (unix ms)
-- Returns: joined, admitted, abandoned, left_waiting, active passes
local line_key, active_key, unknown_passes_key = KEYS[1], KEYS[2], KEYS[3] -- hash, zset, hash
local now = tonumber(ARGV[1])

local reply = redis.call('HMGET', line_key, 'joined', 'admitted', 'abandoned', 'left_waiting')
for i = 1, 4 do reply[i] = tonumber(reply[i] or '0') end
-- Passes issued before a restore that the node did not keep, by when they run out.
local active = redis.call('ZCOUNT', active_key, '(' .. ARGV[1], '+inf')
local stand_ins = redis.call('HGETALL', unknown_passes_key)
for i = 1, #stand_ins, 2 do
  if tonumber(stand_ins[i]) > now then active = active + tonumber(stand_ins[i + 1]) end
end
reply[5] = active
return reply
