-- Events, their sections, and the deployment's generated settings.
CREATE TABLE events (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    venue              TEXT NOT NULL,
    starts_at          TIMESTAMPTZ NOT NULL,
    on_sale_at         TIMESTAMPTZ,
    hold_seconds       INTEGER NOT NULL CHECK (hold_seconds >= 1),
    max_seats_per_user INTEGER NOT NULL CHECK (max_seats_per_user >= 1),
    per_second         DOUBLE PRECISION NOT NULL CHECK (per_second > 0),
    max_active         BIGINT NOT NULL CHECK (max_active >= 1),
    pass_seconds       INTEGER NOT NULL CHECK (pass_seconds >= 1),
    abandon_seconds    INTEGER NOT NULL CHECK (abandon_seconds >= 1),
    paused             BOOLEAN NOT NULL DEFAULT FALSE,
    prequeue_seed      BYTEA NOT NULL CHECK (length(prequeue_seed) = 32),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sections (
    event_id      TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    price_cents   BIGINT NOT NULL CHECK (price_cents >= 0),
    rows          INTEGER NOT NULL CHECK (rows >= 1),
    seats_per_row INTEGER NOT NULL CHECK (seats_per_row >= 1),
    PRIMARY KEY (event_id, id),
    UNIQUE (event_id, position)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
