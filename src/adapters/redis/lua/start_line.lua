-- Puts an event's line in the store: opens a new one, or restores one the
-- store lost. Sequence numbers are handed out only below a reservation written
-- to the durable record first, so a restored line continues above every token
-- ever issued; the people waiting are still in the queue. A line that has its
-- reservation is left alone, so that concurrent restores are harmless.
-- KEYS: line (hash), log (list), draw (string), unknown passes (hash expires_at_ms -> count)
-- ARGV[1]: "open" or "restore"; ARGV[2]: now_ms; ARGV[3], ARGV[4]: regular and
--   pre-queue places reserved; ARGV[5]: the pre-queue's size or ""; ARGV[6]: the
--   draw or ""; then pairs: expires_at_ms, count of passes that may still be valid
-- Returns: 1 if the line was put in the store, 0 if it was there
if redis.call('HEXISTS', KEYS[1], 'limit') == 1 then return 0 end
local counters = redis.call('HMGET', KEYS[1], 'seq', 'preseq')
local seq, preseq = counters[1], counters[2]
if ARGV[1] == 'restore' and (seq or preseq) then
  -- A line from before reservations: it has its counters, so nothing was lost.
  -- Its next allocation reserves above them.
  redis.call('HSET', KEYS[1], 'limit', seq or '0', 'prelimit', preseq or '0')
  return 0
end
local function raise(field, to)
  if tonumber(redis.call('HGET', KEYS[1], field) or '0') < tonumber(to) then
    redis.call('HSET', KEYS[1], field, to)
  end
end
if ARGV[1] == 'restore' then
  raise('seq', ARGV[3])
  raise('preseq', ARGV[4])
  -- Read by admission (nobody is abandoned for the time the store was away)
  -- and by holds (passes issued before are honoured).
  redis.call('HSET', KEYS[1], 'restored_at', ARGV[2])
end
redis.call('HSET', KEYS[1], 'limit', ARGV[3], 'prelimit', ARGV[4], 'epoch', ARGV[2])
if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[1], 'prequeue') == 0 then
  redis.call('HSET', KEYS[1], 'prequeue', ARGV[5])
  redis.call('RPUSH', KEYS[2], 'z:' .. ARGV[5])
end
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[3], ARGV[6])
  redis.call('RPUSH', KEYS[2], 'd')
end
for i = 7, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1])
end
return 1
