-- The line's log entries, written exactly as LogEntry (src/domain/view.rs)
-- reads them; prepended to every script that appends to the log. A unit test
-- (adapters::redis) runs these and parses what they write.
local log_entry = {}
-- The pre-queue closed with this many places.
function log_entry.frozen(prequeue) return 'z:' .. prequeue end
-- The pre-queue draw was published.
function log_entry.drawn() return 'd' end
-- Ranks from..to were consumed, admitted of them admitted, at at_ms.
function log_entry.consumed(from, to, admitted, at_ms)
  return 'c:' .. from .. ':' .. to .. ':' .. admitted .. ':' .. at_ms
end
function log_entry.left(key) return 'l:' .. key end
function log_entry.pass_ended(key) return 'e:' .. key end
function log_entry.abandoned(key) return 'x:' .. key end

