-- The line's counters and how many passes are active, read at one instant: a
-- restore (start_line.lua) replaces the active passes and their stand-ins
-- together, and reads on either side of it could count a pass twice.
-- KEYS: line, active, unknown_passes
-- ARGV: now (unix ms)
-- Returns: joined, admitted, abandoned, left_waiting, active passes
local line_key, active_key, unknown_passes_key = KEYS[1], KEYS[2], KEYS[3] -- hash, zset, hash
local now_ms = ARGV[1]
local now = tonumber(now_ms)

local reply = redis.call('HMGET', line_key, 'joined', 'admitted', 'abandoned', 'left_waiting')
for i = 1, 4 do reply[i] = tonumber(reply[i] or '0') end
local stand_ins = fence.stand_ins(unknown_passes_key, now)
reply[5] = redis.call('ZCOUNT', active_key, '(' .. now_ms, '+inf') + stand_ins
return reply
