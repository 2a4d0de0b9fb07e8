-- Takes a token out of the line: ends its pass if it holds one, else marks it
-- left so that admission skips it and everyone behind moves up.
-- KEYS: line, active, left, log, unknown_passes, honoured_passes
-- ARGV[1]: token key; ARGV[2]: its rank, or "" while the draw has not placed it;
--   ARGV[3], ARGV[4]: when its pass was issued and runs out (ms), or "" if the
--   caller saw no pass issued to it; ARGV[5]: now_ms
-- Returns: { "left" | "ended" | "gone", the line's epoch, the log's length after it }:
--   a view that has read that far has read this leave
local line_key, active_key, left_key, log_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4] -- hash, zset, set, list
local unknown_passes_key, honoured_passes_key = KEYS[5], KEYS[6] -- hash, set (see hold.lua)

local key, rank = ARGV[1], ARGV[2]
local issued_at_ms, expires_at_ms, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function logged(outcome)
  -- A lost line's log is no position: it starts again when the line is restored.
  local epoch = not fence.line_lost(line_key) and redis.call('HGET', line_key, 'epoch') or ''
  return { outcome, epoch, tostring(redis.call('LLEN', log_key)) }
end

-- A pass from before a restore ends here too: its stand-in no longer counts.
if redis.call('ZREM', active_key, key) == 1 or (issued_at_ms and fence.honour_pass(line_key,
    unknown_passes_key, honoured_passes_key, key, issued_at_ms, expires_at_ms, now)) then
  redis.call('RPUSH', log_key, log_entry.pass_ended(key))
  return logged('ended')
end
if redis.call('SISMEMBER', left_key, key) == 1 then
  return logged('gone')
end
local consumed = tonumber(redis.call('HGET', line_key, 'consumed') or '0')
if rank ~= '' and tonumber(rank) <= consumed then
  -- Past the line, and a caller that could not say when its pass was issued:
  -- a pass from before a restore it may be, and it stays ended from now on
  -- (its stand-in counts until it would have run out).
  if redis.call('HEXISTS', line_key, 'restored_at') == 1 then redis.call('SADD', honoured_passes_key, key) end
  return logged('gone')
end
redis.call('SADD', left_key, key)
redis.call('HINCRBY', line_key, 'left_waiting', 1)
redis.call('RPUSH', log_key, log_entry.left(key))
return logged('left')
