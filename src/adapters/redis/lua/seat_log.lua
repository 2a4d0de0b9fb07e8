-- The seat map's version and its log of recent changes, prepended to every
-- script that changes a seat's state: a change takes the next version in the
-- same atomic step, so every instance answers the same states for the same
-- version, and seat_changes.lua can answer a reader only what changed since
-- the version it has.
-- seat_version: hash version -> the current version (integer text, as HINCRBY
--   needs it), kept_from -> the oldest version whose later changes are all logged
-- seat_log: zset seat -> the version of its latest change
-- Big versions never pass through a Lua number on their way into Redis: Lua
-- 5.1 prints numbers with 14 digits.
local seat_log = {}
-- How many versions of changes the log keeps (a version is one group of holds,
-- or one sale or release).
seat_log.kept_versions = 10000
-- `seats` (a list of ids) changed state just now: one new version for them all.
function seat_log.changed(version_key, log_key, seats)
  if #seats == 0 then return end
  local version = redis.call('HINCRBY', version_key, 'version', 1)
  for _, seat in ipairs(seats) do redis.call('ZADD', log_key, version, seat) end
  local kept_from = version - seat_log.kept_versions
  if kept_from > tonumber(redis.call('HGET', version_key, 'kept_from') or '0') then
    redis.call('HSET', version_key, 'kept_from', kept_from)
    redis.call('ZREMRANGEBYSCORE', log_key, '-inf', kept_from)
  end
end
-- The seat state was rebuilt from the record: a new history, which no change
-- logged before applies to. Its version is above every version this store
-- may have answered before it lost writes (a failover, a flush): at least
-- now_ms * 1000, which holds unless seats changed more than 1,000 times per
-- millisecond since the last rebuild.
function seat_log.restarted(version_key, log_key, now_ms)
  redis.call('DEL', log_key)
  local version = tonumber(redis.call('HGET', version_key, 'version') or '0')
  if version + 1 > tonumber(now_ms) * 1000 then
    redis.call('HINCRBY', version_key, 'version', 1)
  else
    redis.call('HSET', version_key, 'version', now_ms .. '000')
  end
  redis.call('HSET', version_key, 'kept_from', redis.call('HGET', version_key, 'version'))
end
