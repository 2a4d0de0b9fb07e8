-- Whether the event's seat state was rebuilt on the node serving it now (see
-- fence.lua): a reader must not trust seats a failover may have rolled back.
-- KEYS: seats_ready
-- Returns: 1 or 0
local seats_ready_key = KEYS[1] -- string
return fence.seats_ready(seats_ready_key) and 1 or 0
