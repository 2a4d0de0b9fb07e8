-- The seat map at its current version, for a reader that has it at version
-- `since`: the seats whose state changed after `since`, with their state now;
-- or every taken seat, when there is no `since`, when the log no longer reaches
-- back to it (trimmed, or the state was rebuilt since), when it is from the
-- future, or when more than `max_changes` seats changed (the whole map is then smaller).
-- KEYS: seats, seats_ready, seat_version, seat_log
-- ARGV: since ("" for none), max_changes
-- Returns: { version, "changes" | "taken", seat, state, seat, state... } | { "rebuild" }
--   where state is "f" (free), "h" (held) or "s" (sold)
local seats_key, seats_ready_key = KEYS[1], KEYS[2] -- hash seat -> "h|s:<order>:<holder>", string
local seat_version_key, seat_log_key = KEYS[3], KEYS[4] -- hash, zset (see seat_log.lua)
local since, max_changes = ARGV[1], tonumber(ARGV[2])

if not fence.seats_ready(seats_ready_key) then return { 'rebuild' } end
local kept = redis.call('HMGET', seat_version_key, 'version', 'kept_from')
local version, kept_from = kept[1] or '0', tonumber(kept[2] or '0')
local reply = { version }
local after = tonumber(since)
if after and after >= kept_from and after <= tonumber(version)
  and redis.call('ZCOUNT', seat_log_key, '(' .. since, '+inf') <= max_changes then
  reply[2] = 'changes'
  for _, seat in ipairs(redis.call('ZRANGEBYSCORE', seat_log_key, '(' .. since, '+inf')) do
    local taken = redis.call('HGET', seats_key, seat)
    reply[#reply + 1] = seat
    reply[#reply + 1] = taken and string.sub(taken, 1, 1) or 'f'
  end
  return reply
end
reply[2] = 'taken'
local taken = redis.call('HGETALL', seats_key)
for i = 1, #taken, 2 do
  reply[#reply + 1] = taken[i]
  reply[#reply + 1] = string.sub(taken[i + 1], 1, 1)
end
return reply
