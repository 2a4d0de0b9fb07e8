-- Marks places whose joins were never published as failed (admission skips
-- them), and gives back what those joins took at the door: the challenge each
-- used, so that the client's retry with the same solution is not refused as
-- used, and its place in the address window, while that window is still the
-- current one (a later window started from empty anyway).
-- KEYS: failed, used_challenges, address_places
-- ARGV[1]: the address window the joins counted in, or "" for none; then
--   triples: the place's key, its challenge id or "", its client address or ""
local failed_key, used_key, address_key = KEYS[1], KEYS[2], KEYS[3] -- set, zset, hash
local window = ARGV[1]
local same_window = window ~= '' and redis.call('HGET', address_key, '#window') == window

for i = 2, #ARGV, 3 do
  local key, challenge, address = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('SADD', failed_key, key)
  if challenge ~= '' then redis.call('ZREM', used_key, challenge) end
  if same_window and address ~= '' and redis.call('HINCRBY', address_key, address, -1) <= 0 then
    redis.call('HDEL', address_key, address)
  end
end
return 1
