-- Raises the reservation that allocation stays within, never lowering it. A
-- lost line is left lost: a reservation alone would let counters restart at 0.
-- KEYS: line
-- ARGV[1]: "limit" (regular) or "prelimit" (pre-queue); ARGV[2]: places reserved
local line_key = KEYS[1] -- hash
local limit_field, reserved = ARGV[1], ARGV[2]

if fence.line_lost(line_key) then return 0 end
if tonumber(redis.call('HGET', line_key, limit_field) or '0') < tonumber(reserved) then
  redis.call('HSET', line_key, limit_field, reserved)
end
return 1
