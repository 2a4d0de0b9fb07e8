-- Seats, created with their event; orders and the seats they take.
CREATE TABLE seats (
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seat_id  TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (event_id, seat_id)
);

CREATE TABLE orders (
    id           UUID PRIMARY KEY,
    event_id     TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    holder       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ,
    payment_ref  TEXT
);
CREATE INDEX orders_pending_by_expiry ON orders (expires_at) WHERE status = 'pending';
CREATE INDEX orders_by_event_status ON orders (event_id, status);

-- `live` is true while the order is pending or paid.
CREATE TABLE order_seats (
    order_id UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    seat_id  TEXT NOT NULL,
    live     BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (order_id, seat_id),
    FOREIGN KEY (event_id, seat_id) REFERENCES seats (event_id, seat_id)
);
-- The last line of defence: a seat is taken by at most one live order, ever.
CREATE UNIQUE INDEX seat_live_unique ON order_seats (event_id, seat_id) WHERE live;
