-- Events keep when they were created and last changed, as on PostgreSQL (times
-- are unix milliseconds). The events created before this get its time.
ALTER TABLE events ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE events SET created_at = CAST(unixepoch('subsec') * 1000 AS INTEGER),
                  updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER);
