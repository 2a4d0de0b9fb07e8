-- Puts an event's line in the store: opens a new one, or restores one the
-- store lost. Sequence numbers are handed out only below a reservation written
-- to the durable record first, so a restored line continues above every token
-- ever issued; the people waiting are still in the queue. A line that has its
-- reservation and was written on this node is left alone, so that concurrent
-- restores are harmless; one this node holds from another's history (a
-- failover, an older snapshot) is restored over what it kept.
-- KEYS: line, log, draw, unknown_passes, active, honoured_passes
-- ARGV[1]: "open" or "restore"; ARGV[2]: now_ms; ARGV[3], ARGV[4]: regular and
--   pre-queue places reserved; ARGV[5]: the pre-queue's size or ""; ARGV[6]: the
--   draw or ""; ARGV[7]: n, then n keys of passes ended early; then pairs,
--   soonest first: expires_at_ms, count of passes that may still be valid
-- Returns: 1 if the line was put in the store, 0 if it was there
local line_key, log_key, draw_key = KEYS[1], KEYS[2], KEYS[3] -- hash, list, string
local unknown_passes_key = KEYS[4] -- hash expires_at_ms -> count
local active_key, honoured_passes_key = KEYS[5], KEYS[6] -- zset, set (see hold.lua)
local mode, now_ms = ARGV[1], ARGV[2]
local regular_reserved, prequeue_reserved = ARGV[3], ARGV[4]
local prequeue_size, draw = ARGV[5], ARGV[6]
local first_ended, ended = 8, tonumber(ARGV[7])
local first_pass_pair = first_ended + ended

if not fence.line_lost(line_key) then return 0 end
local line = redis.call('HMGET', line_key, 'seq', 'preseq', 'limit')
local seq, preseq, limit = line[1], line[2], line[3]
if mode == 'restore' and not limit and (seq or preseq) then
  -- A line from before reservations: it has its counters, so nothing was lost.
  -- Its next allocation reserves above them.
  redis.call('HSET', line_key, 'limit', seq or '0', 'prelimit', preseq or '0', 'node', fence.node())
  return 0
end
local function raise(field, to)
  if tonumber(redis.call('HGET', line_key, field) or '0') < tonumber(to) then
    redis.call('HSET', line_key, field, to)
  end
end
if mode == 'restore' then
  raise('seq', regular_reserved)
  raise('preseq', prequeue_reserved)
  -- Read by admission (nobody is abandoned for the time the store was away)
  -- and by holds (passes issued before are honoured).
  redis.call('HSET', line_key, 'restored_at', now_ms)
end
redis.call('HSET', line_key, 'limit', regular_reserved, 'prelimit', prequeue_reserved, 'epoch', now_ms,
  'node', fence.node())
if prequeue_size ~= '' and redis.call('HEXISTS', line_key, 'prequeue') == 0 then
  redis.call('HSET', line_key, 'prequeue', prequeue_size)
  redis.call('RPUSH', log_key, log_entry.frozen(prequeue_size))
end
if draw ~= '' and redis.call('EXISTS', draw_key) == 0 then
  redis.call('SET', draw_key, draw)
  redis.call('RPUSH', log_key, log_entry.drawn())
end
-- The passes this node kept (a failover to a replica keeps all but the last
-- moments) count by themselves, less those the restoring process saw end,
-- which stay ended. They are the earliest of the passes that process knows
-- valid: stand-ins count the rest, the latest-issued ones, so that no pass is
-- counted twice and max_active is neither passed nor left unused. The
-- stand-ins of an earlier restore go: what the process knows now covers them.
for i = first_ended, first_pass_pair - 1 do
  redis.call('ZREM', active_key, ARGV[i])
  redis.call('SADD', honoured_passes_key, ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', active_key, '-inf', now_ms)
redis.call('DEL', unknown_passes_key)
-- Already counted: never honoured in a stand-in's place, even once ended.
local kept_passes = redis.call('ZRANGEBYSCORE', active_key, '-inf', '+inf')
for _, pass in ipairs(kept_passes) do redis.call('SADD', honoured_passes_key, pass) end
local kept = #kept_passes
for i = first_pass_pair, #ARGV, 2 do
  local count = tonumber(ARGV[i + 1])
  local counted = math.min(kept, count)
  kept = kept - counted
  if count > counted then redis.call('HINCRBY', unknown_passes_key, ARGV[i], count - counted) end
end
return 1
