-- The embedded key-value store's last snapshot, in parts: the journal holds
-- only what changed after it.
CREATE TABLE kv_snapshot (
    part INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
