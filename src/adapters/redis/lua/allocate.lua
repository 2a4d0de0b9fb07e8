-- Hands out sequence numbers to one group of joins, atomically with the
-- decision pre-queue or regular (a sale that opened closes the pre-queue).
-- KEYS: line (hash), visitors (hash), log (list)
-- ARGV[1]: "1" once the sale is open; ARGV[2..]: visitor ids ("" for none)
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
for i = 2, #ARGV do
  local entry = ARGV[i] ~= '' and redis.call('HGET', KEYS[2], ARGV[i])
  if entry then
    reply[#reply + 1] = entry
  else
    reply[#reply + 1] = ''
    new = new + 1
  end
end

local counter = prequeue and 'seq' or 'preseq'
reply[1] = prequeue and 'r' or 'p'
reply[2] = tostring(redis.call('HINCRBY', KEYS[1], counter, new) - new + 1)
return reply
