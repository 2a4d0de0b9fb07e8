-- The durable part of each line: what the admission store's state is restored
-- from if that store loses it. Sequence numbers are handed out only below the
-- reservations, so a restored line continues above every token ever issued.
CREATE TABLE lines (
    event_id          TEXT PRIMARY KEY,
    regular_reserved  INTEGER NOT NULL DEFAULT 0,
    prequeue_reserved INTEGER NOT NULL DEFAULT 0,
    prequeue_size     INTEGER,
    draw              BLOB
);
