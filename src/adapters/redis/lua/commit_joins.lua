-- Records joins the broker has confirmed: claims their visitor ids and counts
-- them. A join that lost its visitor id to a concurrent join with
-- the same id leaves the line at once (or, if admission already reached it,
-- ends its pass); the caller answers with the winner.
-- KEYS: line (hash), visitors (hash), left (set), log (list), active (zset)
-- ARGV: pairs: entry ("<key>:<token_id>"), visitor ("" for none)
-- Returns: per join, the winning entry when it lost its visitor id, else ""
local reply = {}
local joined = 0
for i = 1, #ARGV, 2 do
  local entry, visitor = ARGV[i], ARGV[i + 1]
  local key = string.match(entry, '^[^:]+')
  local winner = ''
  if visitor ~= '' and redis.call('HSETNX', KEYS[2], visitor, entry) == 0 then
    winner = redis.call('HGET', KEYS[2], visitor)
    if winner == entry then winner = '' end
  end
  joined = joined + 1
  if winner ~= '' then
    if redis.call('ZREM', KEYS[5], key) == 1 then
      redis.call('RPUSH', KEYS[4], 'e:' .. key)
    else
      redis.call('SADD', KEYS[3], key)
      redis.call('HINCRBY', KEYS[1], 'left_waiting', 1)
      redis.call('RPUSH', KEYS[4], 'l:' .. key)
    end
  end
  reply[#reply + 1] = winner
end
redis.call('HINCRBY', KEYS[1], 'joined', joined)
return reply
