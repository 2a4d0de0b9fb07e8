-- Records joins the broker has confirmed: claims their visitor ids and counts
-- them. A visitor id is claimed when it names no place yet, or still names the
-- ended place this join replaces (see allocate.lua). A join that lost its
-- visitor id to a concurrent join with the same id leaves the line at once
-- (or, if admission already reached it, ends its pass); the caller answers
-- with the winner.
-- KEYS: line, visitors, left, log, active
-- ARGV: triples: entry ("<key>:<token_id>"), visitor ("" for none), the ended
--   entry it replaces ("" for none)
-- Returns: per join, the winning entry when it lost its visitor id, else ""
local line_key, visitors_key, left_key, log_key, active_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5] -- hash, hash, set, list, zset
local first_join = 1

local reply = {}
local joined = 0
for i = first_join, #ARGV, 3 do
  local entry, visitor, replaces = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = string.match(entry, '^[^:]+')
  local winner = ''
  if visitor ~= '' then
    local current = redis.call('HGET', visitors_key, visitor)
    if not current or current == replaces then
      redis.call('HSET', visitors_key, visitor, entry)
    elseif current ~= entry then
      winner = current
    end
  end
  joined = joined + 1
  if winner ~= '' then
    if redis.call('ZREM', active_key, key) == 1 then
      redis.call('RPUSH', log_key, log_entry.pass_ended(key))
    else
      redis.call('SADD', left_key, key)
      redis.call('HINCRBY', line_key, 'left_waiting', 1)
      redis.call('RPUSH', log_key, log_entry.left(key))
    end
  end
  reply[#reply + 1] = winner
end
redis.call('HINCRBY', line_key, 'joined', joined)
return reply
