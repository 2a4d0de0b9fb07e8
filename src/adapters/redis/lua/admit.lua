-- One admission step: consumes places in rank order from the watermark, skips
-- those that left, failed or were abandoned, and admits the rest until
-- max_active valid passes exist. Appends what it did to the event's log.
-- Once every seat is sold nobody more is admitted: waiting tokens read sold_out
-- and must never read admitted after that.
-- A join whose publish got no confirm in time was answered 503 and marked
-- failed, but its message may still reach the line: its place is skipped too.
-- A step may hold tens of thousands of places: what it reads and writes per
-- place goes in a few commands for many places each, not in one per place.
-- KEYS: line, active, left, seen, log, seat_counts, unknown_passes, failed, seats_ready
-- ARGV: now_ms, pass_ms, max_active, seen_cutoff_s, max_admit, seats_total, the worker's
--   watermark, the first candidate's rank, then the key of each candidate, rank by rank
--   ("" for a place nobody holds, "!<key>" for a join that never arrived: logged
--   as departed, so that its token can never read admitted)
-- Returns: { consumed, admitted, room, replicas of this node } | { "lost" }
local line_key, active_key, left_key = KEYS[1], KEYS[2], KEYS[3] -- hash, zset, set
local seen_key, log_key, seat_counts_key = KEYS[4], KEYS[5], KEYS[6] -- hash, list, hash
-- unknown_passes: hash expires_at_ms -> count (passes from before the line was restored)
local unknown_passes_key, failed_key, seats_ready_key = KEYS[7], KEYS[8], KEYS[9] -- hash, set, string
local now, pass_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_active, cutoff, max_admit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local seats_total, floor, first_rank = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local first_candidate = 9

-- Redis runs Lua 5.1 (unpack), the embedded store Lua 5.4 (table.unpack).
local unpack = table.unpack or unpack
-- Values sent in one command at most: Redis' Lua unpacks fewer than 8,000 at
-- once. Even, so that score-member pairs are never split.
local per_command = 4000

-- Writes all of `values` to `key` with `command`, in as few commands as allowed.
local function write_all(command, key, values)
  for first = 1, #values, per_command do
    redis.call(command, key, unpack(values, first, math.min(first + per_command - 1, #values)))
  end
end

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
local unknown, ran_out = fence.stand_ins(unknown_passes_key, now)
for _, field in ipairs(ran_out) do redis.call('HDEL', unknown_passes_key, field) end
local room = max_active - redis.call('ZCARD', active_key) - unknown

-- Who left, whose join failed and when each was last seen, read for the
-- candidates as the loop reaches them: in parts that start small (a step
-- with no room stops at its first valid place) and double, one command each.
local candidates = #ARGV - first_candidate + 1
-- Candidates must start at the watermark: otherwise nobody is consumed.
if first_rank ~= consumed + 1 then candidates = 0 end
local has_left, has_failed, last_seen = {}, {}, {}
-- Usually nobody left or failed: those sets are then not asked about each place.
local anyone_left = redis.call('SCARD', left_key) > 0
local anyone_failed = redis.call('SCARD', failed_key) > 0
local read, part = 0, 64
local function read_part()
  local upto = math.min(read + part, candidates)
  local at, keys = {}, {}
  for n = read + 1, upto do
    local key = ARGV[first_candidate + n - 1]
    if key ~= '' and string.sub(key, 1, 1) ~= '!' then
      at[#at + 1], keys[#keys + 1] = n, key
    end
  end
  if #keys > 0 then
    local left = anyone_left and redis.call('SMISMEMBER', left_key, unpack(keys)) or {}
    local failed = anyone_failed and redis.call('SMISMEMBER', failed_key, unpack(keys)) or {}
    local seen = redis.call('HMGET', seen_key, unpack(keys))
    for i, n in ipairs(at) do
      has_left[n], has_failed[n], last_seen[n] = left[i] == 1, failed[i] == 1, seen[i]
    end
  end
  read, part = upto, math.min(part * 2, per_command)
end

local last, admitted, abandoned = consumed, 0, 0
local passes, entries = {}, {}
-- One score for every pass of the step, written once as Redis will read it.
local expires = string.format('%d', now + pass_ms)
for n = 1, candidates do
  local rank, key = consumed + n, ARGV[first_candidate + n - 1]
  if n > read then read_part() end
  if key == '' or has_left[n] then
    last = rank
  elseif string.sub(key, 1, 1) == '!' then
    entries[#entries + 1] = log_entry.abandoned(string.sub(key, 2))
    last = rank
  elseif has_failed[n] then
    entries[#entries + 1] = log_entry.abandoned(key)
    last = rank
  elseif math.max(tonumber(last_seen[n] or '0'), restored_s) < cutoff then
    entries[#entries + 1] = log_entry.abandoned(key)
    abandoned = abandoned + 1
    last = rank
  elseif room > 0 and admitted < max_admit then
    passes[#passes + 1] = expires
    passes[#passes + 1] = key
    room = room - 1
    admitted = admitted + 1
    last = rank
  else
    break
  end
end

write_all('ZADD', active_key, passes)
if last > consumed then
  redis.call('HSET', line_key, 'consumed', last)
  redis.call('HINCRBY', line_key, 'admitted', admitted)
  redis.call('HINCRBY', line_key, 'abandoned', abandoned)
  entries[#entries + 1] = log_entry.consumed(consumed + 1, last, admitted, now)
end
write_all('RPUSH', log_key, entries)
return { tostring(last), tostring(admitted), tostring(math.max(room, 0)), fence.replicas() }
