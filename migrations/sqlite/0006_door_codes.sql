-- Invitation-only events: who may join ('open': anyone; 'codes': a join must
-- bring an invitation code issued for the event).
ALTER TABLE events ADD COLUMN access TEXT NOT NULL DEFAULT 'open'
    CHECK (access IN ('open', 'codes'));

-- New places per client address in each window of address_window_seconds;
-- 0 (every event created before this) is no limit.
ALTER TABLE events ADD COLUMN address_places INTEGER NOT NULL DEFAULT 0
    CHECK (address_places >= 0);
ALTER TABLE events ADD COLUMN address_window_seconds INTEGER NOT NULL DEFAULT 60
    CHECK (address_window_seconds >= 1);

-- An event's invitation codes, by their keyed hash only (HMAC-SHA256 with the
-- deployment's secret, hex): a code is never stored, nor readable again.
-- used_at: when the code first took a place in the line.
CREATE TABLE event_codes (
    event_id  TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   INTEGER,
    PRIMARY KEY (event_id, code_hash)
) WITHOUT ROWID;
