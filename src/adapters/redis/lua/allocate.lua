-- Hands out sequence numbers to one group of joins, atomically with the
-- decision pre-queue or regular (a sale that opened closes the pre-queue).
-- New places are marked seen now, before their messages are published: the
-- admission worker may receive a message before the join is answered.
-- KEYS: line (hash), visitors (hash), log (list), seen (hash)
-- ARGV[1]: "1" once the sale is open; ARGV[2]: now (unix seconds); ARGV[3..]: visitor ids ("" for none)
-- Returns: { kind, first_seq, prequeue_size or "", existing entry or "" per visitor }
local open = ARGV[1] == '1'
local prequeue = redis.call('HGET', KEYS[1], 'prequeue')
if open and not prequeue then
  prequeue = redis.call('HGET', KEYS[1], 'preseq') or '0'
  redis.call('HSET', KEYS[1], 'prequeue', prequeue)
  redis.call('RPUSH', KEYS[3], 'z:' .. prequeue)
end

local reply = { '', '', prequeue or '' }
local new = 0
for i = 3, #ARGV do
  local entry = ARGV[i] ~= '' and redis.call('HGET', KEYS[2], ARGV[i])
  if entry then
    reply[#reply + 1] = entry
  else
    reply[#reply + 1] = ''
    new = new + 1
  end
end

local counter = prequeue and 'seq' or 'preseq'
local kind = prequeue and 'r' or 'p'
local first = redis.call('HINCRBY', KEYS[1], counter, new) - new + 1
for seq = first, first + new - 1 do
  redis.call('HSET', KEYS[4], kind .. seq, ARGV[2])
end
reply[1] = kind
reply[2] = tostring(first)
return reply
