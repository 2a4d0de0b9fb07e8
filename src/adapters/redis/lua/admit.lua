-- One admission step: consumes places in rank order from the watermark, skips
-- those that left, failed or were abandoned, and admits the rest until
-- max_active valid passes exist. Appends what it did to the event's log.
-- Once every seat is sold nobody more is admitted: waiting tokens read sold_out
-- and must never read admitted after that.
-- A join whose publish got no confirm in time was answered 503 and marked
-- failed, but its message may still reach the line: its place is skipped too.
-- KEYS: line (hash), active (zset), left (set), seen (hash), log (list), seat counts (hash),
--       unknown passes (hash expires_at_ms -> count: passes from before the line was restored),
--       failed (set), seats ready (string)
-- ARGV: now_ms, pass_ms, max_active, seen_cutoff_s, max_admit, seats_total, the worker's
--   watermark, then pairs: rank, key
--   where key is "" for a place nobody holds, and "!<key>" for a join that never
--   arrived (logged as departed, so that its token can never read admitted)
-- Returns: { consumed, admitted, room } | { "lost" }
if redis.call('HEXISTS', KEYS[1], 'limit') == 0 then return { 'lost' } end
-- Without the seat state, a sold-out sale would not be known: nobody moves until it is rebuilt.
if redis.call('EXISTS', KEYS[9]) == 0 then return { 'lost' } end
local now, pass_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_active, cutoff, max_admit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if tonumber(redis.call('HGET', KEYS[6], 'sold') or '0') >= tonumber(ARGV[6]) then max_admit = 0 end
local consumed = tonumber(redis.call('HGET', KEYS[1], 'consumed') or '0')
local floor = tonumber(ARGV[7])
if floor > consumed then
  -- A restored line lost its watermark; the worker's own is the truth. Logged
  -- admitted at 0: a view that never saw them learns only that they are past.
  redis.call('HSET', KEYS[1], 'consumed', floor)
  redis.call('RPUSH', KEYS[5], 'c:' .. (consumed + 1) .. ':' .. floor .. ':0:0')
  consumed = floor
end
-- Nobody is abandoned for not polling while the store was away.
local restored_s = math.floor(tonumber(redis.call('HGET', KEYS[1], 'restored_at') or '0') / 1000)

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local unknown = 0
local stand_ins = redis.call('HGETALL', KEYS[7])
for i = 1, #stand_ins, 2 do
  if tonumber(stand_ins[i]) <= now then
    redis.call('HDEL', KEYS[7], stand_ins[i])
  else
    unknown = unknown + tonumber(stand_ins[i + 1])
  end
end
local room = max_active - redis.call('ZCARD', KEYS[2]) - unknown
local last, admitted, abandoned = consumed, 0, 0

for i = 8, #ARGV, 2 do
  local rank, key = tonumber(ARGV[i]), ARGV[i + 1]
  if rank ~= last + 1 then break end
  if key == '' or redis.call('SISMEMBER', KEYS[3], key) == 1 then
    last = rank
  elseif string.sub(key, 1, 1) == '!' then
    redis.call('RPUSH', KEYS[5], 'x:' .. string.sub(key, 2))
    last = rank
  elseif redis.call('SISMEMBER', KEYS[8], key) == 1 then
    redis.call('RPUSH', KEYS[5], 'x:' .. key)
    last = rank
  elseif math.max(tonumber(redis.call('HGET', KEYS[4], key) or '0'), restored_s) < cutoff then
    redis.call('RPUSH', KEYS[5], 'x:' .. key)
    abandoned = abandoned + 1
    last = rank
  elseif room > 0 and admitted < max_admit then
    redis.call('ZADD', KEYS[2], now + pass_ms, key)
    room = room - 1
    admitted = admitted + 1
    last = rank
  else
    break
  end
end

if last > consumed then
  redis.call('HSET', KEYS[1], 'consumed', last)
  redis.call('HINCRBY', KEYS[1], 'admitted', admitted)
  redis.call('HINCRBY', KEYS[1], 'abandoned', abandoned)
  redis.call('RPUSH', KEYS[5], 'c:' .. (consumed + 1) .. ':' .. last .. ':' .. admitted .. ':' .. now)
end
return { tostring(last), tostring(admitted), tostring(math.max(room, 0)) }
