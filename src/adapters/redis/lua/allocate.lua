-- Hands out sequence numbers to one group of joins, atomically with the
-- decision pre-queue or regular (a sale that opened closes the pre-queue).
-- New places are marked seen now, before their messages are published: the
-- admission worker may receive a message before the join is answered.
-- Pre-queue places also record their token id: the draw is made from this
-- record, not from the deliveries a worker happens to hold.
-- Sequence numbers stay within the reservation (see start_line.lua).
-- A visitor id whose place is still live (waiting, pre-queued, or admitted with
-- a valid pass) is answered with that place, which counts as a sign of life.
-- One whose place has ended (left, abandoned, its pass ran out or was ended)
-- gets a new place at the back; commit_joins.lua claims the id for it only if
-- the id still names the ended place, so racing joins still make one place.
-- A join without a live place passes the door first: on an event that asks
-- for a proof of work its ticket must be a solved challenge that has bought
-- no place yet; the challenge is marked used with the place it buys (never
-- when the group only asks for a reservation), until it expires.
-- On an event with an address limit, a new place also needs its client address
-- to have taken fewer than the limit's places in the current window; only new
-- places count (a live place joined again does not). The window's counts are
-- one hash, emptied when a later window starts.
-- KEYS: line, visitors, log, seen, prequeue_ids, left, active, draw, used_challenges, address_places
-- ARGV[1]: "1" once the sale is open; ARGV[2]: now (unix milliseconds);
--   ARGV[3]: "<places>:<window number>" when places per address are limited, else "";
--   then quadruples: visitor id ("" for none), token id for a new place, ticket
--   ("" when no challenge is asked, "-" when none was solved, or
--   "<challenge id>@<expiry, unix milliseconds>"), client address ("" for none)
-- Returns: { kind, first_seq, prequeue_size or "", per visitor: its live entry,
--   "~" .. its ended entry, "" or, refused at the door, "!required" | "!used"
--   | "!address" } | { "reserve", kind, places needed } | { "lost" }
local line_key, visitors_key, log_key, seen_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4] -- hash, hash, list, hash
local prequeue_ids_key = KEYS[5] -- hash seq -> token id
local left_key, active_key, draw_key = KEYS[6], KEYS[7], KEYS[8] -- set, zset, string
local used_key = KEYS[9] -- zset challenge id -> its expiry (unix milliseconds)
local address_key = KEYS[10] -- hash address -> new places in the window; '#window' -> its number
local open = ARGV[1] == '1'
local now_ms = tonumber(ARGV[2])
local address_limit, address_window = string.match(ARGV[3], '^(%d+):(%d+)$')
address_limit = tonumber(address_limit)
local first_request = 4

if fence.line_lost(line_key) then return { 'lost' } end
local limits = redis.call('HMGET', line_key, 'limit', 'prelimit')
local now_s = tostring(math.floor(now_ms / 1000))
local prequeue = redis.call('HGET', line_key, 'prequeue')
if open and not prequeue then
  prequeue = redis.call('HGET', line_key, 'preseq') or '0'
  redis.call('HSET', line_key, 'prequeue', prequeue)
  redis.call('RPUSH', log_key, log_entry.frozen(prequeue))
end

-- The rank of a token key, or nil while the draw has not placed it yet
-- (0 for a pre-queue join the draw left out).
local draw
local function rank_of(key)
  local kind, seq = string.sub(key, 1, 1), tonumber(string.sub(key, 2))
  if not prequeue then return nil end
  if kind == 'r' then return tonumber(prequeue) + seq end
  draw = draw or redis.call('GET', draw_key) or false
  if not draw then return nil end
  local at = (seq - 1) * 4 + 1
  local b1, b2, b3, b4 = string.byte(draw, at, at + 3)
  if not b4 then return 0 end
  return b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
end

-- Whether a place is live, and whether it holds a pass.
local consumed
local function liveness(key)
  if redis.call('SISMEMBER', left_key, key) == 1 then return false, false end
  local expires = redis.call('ZSCORE', active_key, key)
  if expires then return tonumber(expires) > now_ms, true end
  local rank = rank_of(key)
  if rank == nil then return true, false end
  consumed = consumed or tonumber(redis.call('HGET', line_key, 'consumed') or '0')
  -- Consumed without a pass in force: admitted and ended, abandoned, or skipped.
  return rank > consumed, false
end

-- A used challenge is forgotten once it has expired: it no longer verifies.
-- Expired by this instance's clock, which may run ahead of another's: kept a
-- minute longer, so a skew under a minute never lets a challenge buy twice.
redis.call('ZREMRANGEBYSCORE', used_key, '-inf', now_ms - 60000)
-- The challenges this group's new places use, by id: their expiries.
local claims = {}
-- The new places this group gives each limited address.
local places = {}
-- Nil when the ticket lets the join take a new place (and the challenge it
-- uses, if any), else the refusal.
local function ticket_refusal(ticket)
  if ticket == '' then return nil end
  if ticket == '-' then return '!required' end
  local id, expires = string.match(ticket, '^(.+)@(%d+)$')
  if not id then return '!required' end
  if claims[id] or redis.call('ZSCORE', used_key, id) then return '!used' end
  return nil, id, expires
end

-- A window counts from empty. An instance whose clock is behind may name the
-- window before: it counts into the current one rather than empty it.
if address_limit then
  local current = tonumber(redis.call('HGET', address_key, '#window') or '-1')
  if tonumber(address_window) > current then
    redis.call('DEL', address_key)
    redis.call('HSET', address_key, '#window', address_window)
  end
end
local function address_taken(address)
  if not address_limit or address == '' then return 0 end
  return (places[address] or 0) + tonumber(redis.call('HGET', address_key, address) or '0')
end

local reply = { '', '', prequeue or '' }
local fresh = {}
for i = first_request, #ARGV, 4 do
  local entry = ARGV[i] ~= '' and redis.call('HGET', visitors_key, ARGV[i])
  local answer = ''
  if entry then
    local key = string.match(entry, '^[^:]+')
    local live, admitted = liveness(key)
    if live then
      answer = entry
      -- Joining again is a sign of life, as a poll is.
      if not admitted then redis.call('HSET', seen_key, key, now_s) end
    else
      answer = '~' .. entry
    end
  end
  if answer == '' or string.sub(answer, 1, 1) == '~' then
    local refused, challenge, expires = ticket_refusal(ARGV[i + 2])
    local address = ARGV[i + 3]
    if not refused and address_limit and address_taken(address) >= address_limit then
      refused = '!address'
    end
    if refused then
      answer = refused
    else
      if challenge then claims[challenge] = expires end
      if address_limit and address ~= '' then places[address] = (places[address] or 0) + 1 end
      fresh[#fresh + 1] = ARGV[i + 1]
    end
  end
  reply[#reply + 1] = answer
end
local new = #fresh

local counter = prequeue and 'seq' or 'preseq'
local kind = prequeue and 'r' or 'p'
local needed = tonumber(redis.call('HGET', line_key, counter) or '0') + new
if needed > tonumber((prequeue and limits[1] or limits[2]) or '0') then
  return { 'reserve', kind, tostring(needed) }
end
for id, expires in pairs(claims) do
  redis.call('ZADD', used_key, expires, id)
end
for address, count in pairs(places) do
  redis.call('HINCRBY', address_key, address, count)
end
local first = redis.call('HINCRBY', line_key, counter, new) - new + 1
for n = 1, new do
  local seq = first + n - 1
  redis.call('HSET', seen_key, kind .. seq, now_s)
  if kind == 'p' then redis.call('HSET', prequeue_ids_key, seq, fresh[n]) end
end
reply[1] = kind
reply[2] = tostring(first)
return reply
