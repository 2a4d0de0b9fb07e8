-- One admission step: consumes places in rank order from the watermark, skips
-- those that left, failed or were abandoned, and admits the rest until
-- max_active valid passes exist. Appends what it did to the event's log.
-- Once every seat is sold nobody more is admitted: waiting tokens read sold_out
-- and must never read admitted after that.
-- A join whose publish got no confirm in time was answered 503 and marked
-- failed, but its message may still reach the line: its place is skipped too.
-- KEYS: line, active, left, seen, log, seat_counts, unknown_passes, failed, seats_ready
-- ARGV: now_ms, pass_ms, max_active, seen_cutoff_s, max_admit, seats_total, the worker's
--   watermark, then pairs: rank, key
--   where key is "" for a place nobody holds, and "!<key>" for a join that never
--   arrived (logged as departed, so that its token can never read admitted)
-- Returns: { consumed, admitted, room, replicas of this node } | { "lost" }
local line_key, active_key, left_key = KEYS[1], KEYS[2], KEYS[3] -- hash, zset, set
local seen_key, log_key, seat_counts_key = KEYS[4], KEYS[5], KEYS[6] -- hash, list, hash
-- unknown_passes: hash expires_at_ms -> count (passes from before the line was restored)
local unknown_passes_key, failed_key, seats_ready_key = KEYS[7], KEYS[8], KEYS[9] -- hash, set, string
local now, pass_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_active, cutoff, max_admit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local seats_total, floor = tonumber(ARGV[6]), tonumber(ARGV[7])
local first_candidate = 8

if fence.line_lost(line_key) then return { 'lost' } end
-- Without the seat state, a sold-out sale would not be known: nobody moves until it is rebuilt.
if not fence.seats_ready(seats_ready_key) then return { 'lost' } end
if tonumber(redis.call('HGET', seat_counts_key, 'sold') or '0') >= seats_total then max_admit = 0 end
local consumed = tonumber(redis.call('HGET', line_key, 'consumed') or '0')
if floor > consumed then
  -- A restored line lost its watermark; the worker's own is the truth. Logged
  -- admitted at 0: a view that never saw them learns only that they are past.
  redis.call('HSET', line_key, 'consumed', floor)
  redis.call('RPUSH', log_key, log_entry.consumed(consumed + 1, floor, 0, 0))
  consumed = floor
end
-- Nobody is abandoned for not polling while the store was away.
local restored_s = math.floor(tonumber(redis.call('HGET', line_key, 'restored_at') or '0') / 1000)

redis.call('ZREMRANGEBYSCORE', active_key, '-inf', now)
local unknown = 0
local stand_ins = redis.call('HGETALL', unknown_passes_key)
for i = 1, #stand_ins, 2 do
  if tonumber(stand_ins[i]) <= now then
    redis.call('HDEL', unknown_passes_key, stand_ins[i])
  else
    unknown = unknown + tonumber(stand_ins[i + 1])
  end
end
local room = max_active - redis.call('ZCARD', active_key) - unknown
local last, admitted, abandoned = consumed, 0, 0

for i = first_candidate, #ARGV, 2 do
  local rank, key = tonumber(ARGV[i]), ARGV[i + 1]
  if rank ~= last + 1 then break end
  if key == '' or redis.call('SISMEMBER', left_key, key) == 1 then
    last = rank
  elseif string.sub(key, 1, 1) == '!' then
    redis.call('RPUSH', log_key, log_entry.abandoned(string.sub(key, 2)))
    last = rank
  elseif redis.call('SISMEMBER', failed_key, key) == 1 then
    redis.call('RPUSH', log_key, log_entry.abandoned(key))
    last = rank
  elseif math.max(tonumber(redis.call('HGET', seen_key, key) or '0'), restored_s) < cutoff then
    redis.call('RPUSH', log_key, log_entry.abandoned(key))
    abandoned = abandoned + 1
    last = rank
  elseif room > 0 and admitted < max_admit then
    redis.call('ZADD', active_key, now + pass_ms, key)
    room = room - 1
    admitted = admitted + 1
    last = rank
  else
    break
  end
end

if last > consumed then
  redis.call('HSET', line_key, 'consumed', last)
  redis.call('HINCRBY', line_key, 'admitted', admitted)
  redis.call('HINCRBY', line_key, 'abandoned', abandoned)
  redis.call('RPUSH', log_key, log_entry.consumed(consumed + 1, last, admitted, now))
end
return { tostring(last), tostring(admitted), tostring(math.max(room, 0)), fence.replicas() }
