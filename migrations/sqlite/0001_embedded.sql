-- Embedded mode: the record (events, seats, orders), the durable queues, and
-- the journal of the embedded key-value store. Times are unix milliseconds.
CREATE TABLE events (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    venue              TEXT NOT NULL,
    starts_at          INTEGER NOT NULL,
    on_sale_at         INTEGER,
    hold_seconds       INTEGER NOT NULL CHECK (hold_seconds >= 1),
    max_seats_per_user INTEGER NOT NULL CHECK (max_seats_per_user >= 1),
    per_second         REAL NOT NULL CHECK (per_second > 0),
    max_active         INTEGER NOT NULL CHECK (max_active >= 1),
    pass_seconds       INTEGER NOT NULL CHECK (pass_seconds >= 1),
    abandon_seconds    INTEGER NOT NULL CHECK (abandon_seconds >= 1),
    paused             INTEGER NOT NULL DEFAULT 0,
    prequeue_seed      BLOB NOT NULL CHECK (length(prequeue_seed) = 32)
);

CREATE TABLE sections (
    event_id      TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    price_cents   INTEGER NOT NULL CHECK (price_cents >= 0),
    rows          INTEGER NOT NULL CHECK (rows >= 1),
    seats_per_row INTEGER NOT NULL CHECK (seats_per_row >= 1),
    PRIMARY KEY (event_id, id)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE seats (
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seat_id  TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (event_id, seat_id)
);

CREATE TABLE orders (
    id           BLOB PRIMARY KEY,
    event_id     TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    holder       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled')),
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    payment_ref  TEXT
);
CREATE INDEX orders_pending_by_expiry ON orders (expires_at) WHERE status = 'pending';
CREATE INDEX orders_by_event_status ON orders (event_id, status);

CREATE TABLE order_seats (
    order_id BLOB NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    seat_id  TEXT NOT NULL,
    live     INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (order_id, seat_id),
    FOREIGN KEY (event_id, seat_id) REFERENCES seats (event_id, seat_id)
);
-- The last line of defence: a seat is taken by at most one live order, ever.
CREATE UNIQUE INDEX seat_live_unique ON order_seats (event_id, seat_id) WHERE live = 1;

-- The durable queues: the events' lines and the expiry timers. A message is
-- leased to one consumer at a time and deleted when acknowledged.
CREATE TABLE queue_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    queue      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    lease      TEXT
);
CREATE INDEX queue_messages_ready ON queue_messages (queue, visible_at) WHERE lease IS NULL;

-- The embedded key-value store's journal, replayed at start.
CREATE TABLE kv_journal (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    args BLOB NOT NULL
);
CREATE TABLE kv_scripts (
    sha    TEXT PRIMARY KEY,
    source TEXT NOT NULL
);
