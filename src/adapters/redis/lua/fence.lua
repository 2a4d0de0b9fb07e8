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
