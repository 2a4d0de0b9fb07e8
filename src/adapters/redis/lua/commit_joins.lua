-- Records joins the broker has confirmed: claims their visitor ids, marks them
-- seen, counts them. A join that lost its visitor id to a concurrent join with
-- the same id leaves the line at once; the caller answers with the winner.
-- KEYS: line (hash), visitors (hash), seen (hash), left (set), log (list)
-- ARGV[1]: now (unix seconds); then pairs: entry ("<key>:<token_id>"), visitor ("" for none)
-- Returns: per join, the winning entry when it lost its visitor id, else ""
local reply = {}
local joined = 0
for i = 2, #ARGV, 2 do
  local entry, visitor = ARGV[i], ARGV[i + 1]
  local key = string.match(entry, '^[^:]+')
  local winner = ''
  if visitor ~= '' and redis.call('HSETNX', KEYS[2], visitor, entry) == 0 then
    winner = redis.call('HGET', KEYS[2], visitor)
    if winner == entry then winner = '' end
  end
  joined = joined + 1
  if winner ~= '' then
    redis.call('SADD', KEYS[4], key)
    redis.call('HINCRBY', KEYS[1], 'left_waiting', 1)
    redis.call('RPUSH', KEYS[5], 'l:' .. key)
  else
    redis.call('HSET', KEYS[3], key, ARGV[1])
  end
  reply[#reply + 1] = winner
end
redis.call('HINCRBY', KEYS[1], 'joined', joined)
return reply
