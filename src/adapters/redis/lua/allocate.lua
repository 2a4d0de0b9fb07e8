-- Hands out sequence numbers to one group of joins, atomically with the
-- decision pre-queue or regular (a sale that opened closes the pre-queue).
-- New places are marked seen now, before their messages are published: the
-- admission worker may receive a message before the join is answered.
-- Pre-queue places also record their token id: the draw is made from this
-- record, not from the deliveries a worker happens to hold.
-- Sequence numbers stay within the reservation (see start_line.lua).
-- KEYS: line (hash), visitors (hash), log (list), seen (hash), prequeue ids (hash seq -> token id)
-- ARGV[1]: "1" once the sale is open; ARGV[2]: now (unix seconds);
--   then pairs: visitor id ("" for none), token id for a new place
-- Returns: { kind, first_seq, prequeue_size or "", existing entry or "" per visitor }
--   | { "reserve", kind, places needed } | { "lost" }
local limits = redis.call('HMGET', KEYS[1], 'limit', 'prelimit')
if not limits[1] then return { 'lost' } end
local open = ARGV[1] == '1'
local prequeue = redis.call('HGET', KEYS[1], 'prequeue')
if open and not prequeue then
  prequeue = redis.call('HGET', KEYS[1], 'preseq') or '0'
  redis.call('HSET', KEYS[1], 'prequeue', prequeue)
  redis.call('RPUSH', KEYS[3], 'z:' .. prequeue)
end

local reply = { '', '', prequeue or '' }
local fresh = {}
for i = 3, #ARGV, 2 do
  local entry = ARGV[i] ~= '' and redis.call('HGET', KEYS[2], ARGV[i])
  if entry then
    reply[#reply + 1] = entry
  else
    reply[#reply + 1] = ''
    fresh[#fresh + 1] = ARGV[i + 1]
  end
end
local new = #fresh

local counter = prequeue and 'seq' or 'preseq'
local kind = prequeue and 'r' or 'p'
local needed = tonumber(redis.call('HGET', KEYS[1], counter) or '0') + new
if needed > tonumber((prequeue and limits[1] or limits[2]) or '0') then
  return { 'reserve', kind, tostring(needed) }
end
local first = redis.call('HINCRBY', KEYS[1], counter, new) - new + 1
for n = 1, new do
  local seq = first + n - 1
  redis.call('HSET', KEYS[4], kind .. seq, ARGV[2])
  if kind == 'p' then redis.call('HSET', KEYS[5], seq, fresh[n]) end
end
reply[1] = kind
reply[2] = tostring(first)
return reply
