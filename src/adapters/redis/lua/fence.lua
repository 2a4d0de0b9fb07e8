-- Which Redis process serves these keys now, prepended to every script. A line
-- or a seat state that this process did not open, restore or rebuild may lack
-- writes that were acknowledged (a failover to a replica that lagged, a
-- restart from an older snapshot): it reads as lost, or not ready, until the
-- service reconciles it from the durable record (docs/reliability.md).
local fence = {}
function fence.node()
  if not fence.id then
    fence.id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or ''
  end
  return fence.id
end
-- The line is gone, or was written under another node's history.
function fence.line_lost(line_key)
  local line = redis.call('HMGET', line_key, 'limit', 'node')
  return not line[1] or line[2] ~= fence.node()
end
-- The seat state was rebuilt on this node.
function fence.seats_ready(seats_ready_key)
  return redis.call('GET', seats_ready_key) == fence.node()
end
-- How many replicas of this node are online (not still synchronising): the
-- caller of a write that must outlive a failover waits (WAIT) for one of them
-- to have it; waiting for one in a full resync would only stall the caller.
function fence.replicas()
  local online = 0
  for _ in string.gmatch(redis.call('INFO', 'replication'), 'slave%d+:[^\r\n]*state=online') do
    online = online + 1
  end
  return tostring(online)
end
-- How many stand-ins (passes from before a restore that the node did not keep,
-- by when they run out) are still valid at `now`, and the fields of those
-- that ran out.
function fence.stand_ins(unknown_passes_key, now)
  local valid, ran_out = 0, {}
  local stand_ins = redis.call('HGETALL', unknown_passes_key)
  for i = 1, #stand_ins, 2 do
    if tonumber(stand_ins[i]) > now then
      valid = valid + tonumber(stand_ins[i + 1])
    else
      ran_out[#ran_out + 1] = stand_ins[i]
    end
  end
  return valid, ran_out
end
-- A pass issued before the store lost the line (restored_at in the line's
-- hash) that the store does not hold among its active ones: honoured once (a
-- pass ended after that stays ended), in place of the stand-in that runs out
-- soonest at or after it. Returns whether it was honoured now.
function fence.honour_pass(line_key, unknown_passes_key, honoured_passes_key, pass_key, issued_at_ms, expires_at_ms, now)
  local restored = tonumber(redis.call('HGET', line_key, 'restored_at') or '0')
  if issued_at_ms >= restored or expires_at_ms <= now then return false end
  if redis.call('SADD', honoured_passes_key, pass_key) == 0 then return false end
  local stand_in
  local stand_ins = redis.call('HGETALL', unknown_passes_key)
  for i = 1, #stand_ins, 2 do
    local at = tonumber(stand_ins[i])
    if at >= expires_at_ms and (not stand_in or at < tonumber(stand_in)) then stand_in = stand_ins[i] end
  end
  if stand_in and redis.call('HINCRBY', unknown_passes_key, stand_in, -1) <= 0 then
    redis.call('HDEL', unknown_passes_key, stand_in)
  end
  return true
end
