#!/usr/bin/env python3
"""What PostgreSQL spends checking an order's event and seats, per order.

Writes groups of orders (one seat each) into three copies of the record's
`orders` and `order_seats`, the statements shaped as the record's group insert
(record/mod.rs, `insert_group`: one transaction per group, the rows as JSON),
and prints the time per order of each, in rounds taken alternately:

  - keys: the event and the seat referenced by foreign keys (migrations up to 0008)
  - lookups: no such keys; the insert looks both up (migration 0009 and after)
  - nothing: no check at all (the floor: what the checks cost on top of it)

    bench/order_checks.py [postgres URL] [groups] [rounds]

The URL names a server (its database is not used): a scratch database is
created and dropped. Each round is one connection (psql); the figure is the
CPU time of its server process (read from /proc: run it on the database's
machine), which moves less with the machine's load than the wall clock.
"""

import json
import os
import subprocess
import sys
import tempfile
import uuid

URL = sys.argv[1] if len(sys.argv) > 1 else "postgres://postgres@127.0.0.1"
GROUPS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
GROUP_SIZE = 64
DATABASE = f"order_checks_{os.getpid()}"
SERVER = URL.rstrip("/").rsplit("/", 1)[0] if URL.count("/") > 2 else URL

SCHEMA = """
CREATE TABLE events (id TEXT PRIMARY KEY);
INSERT INTO events VALUES ('e');
CREATE TABLE seats (event_id TEXT NOT NULL REFERENCES events (id), seat_id TEXT NOT NULL,
                    position INTEGER NOT NULL, PRIMARY KEY (event_id, seat_id));
INSERT INTO seats SELECT 'e', 'A-' || g, g FROM generate_series(1, {seats}) g;
"""
TABLES = """
CREATE TABLE orders_{v} (id UUID PRIMARY KEY, event_id TEXT NOT NULL {event_key}, holder TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'cancelled')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0), created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL, ended_at TIMESTAMPTZ, payment_ref TEXT);
CREATE INDEX ON orders_{v} (expires_at) WHERE status = 'pending';
CREATE INDEX ON orders_{v} (event_id, status);
CREATE TABLE seats_{v} (order_id UUID NOT NULL REFERENCES orders_{v} (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL, seat_id TEXT NOT NULL, live BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (order_id, seat_id) {seat_key});
CREATE UNIQUE INDEX ON seats_{v} (event_id, seat_id) WHERE live;
"""
VARIANTS = {
    "keys": dict(
        event_key="REFERENCES events (id)",
        seat_key=", FOREIGN KEY (event_id, seat_id) REFERENCES seats (event_id, seat_id)",
        event="value ->> 1",
        seat="value ->> 2",
    ),
    "lookups": dict(
        event_key="",
        seat_key="",
        event="(SELECT e.id FROM events e WHERE e.id = value ->> 1)",
        seat="(SELECT s.seat_id FROM seats s WHERE s.event_id = value ->> 1 AND s.seat_id = value ->> 2)",
    ),
    "nothing": dict(event_key="", seat_key="", event="value ->> 1", seat="value ->> 2"),
}


def psql(database, sql):
    args = ["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{SERVER}/{database}", "-c", sql]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_of(database, path):
    """The CPU seconds the server process spends running the script at `path`."""
    wrapped = path + ".run"
    with open(wrapped, "w") as f:
        # The statements' rows go to /dev/null; \echo still to standard output.
        f.write("SELECT pg_backend_pid() AS pid \\gset\n\\echo :pid\n\\echo started\n"
                f"\\i {path}\n\\echo finished\nSELECT pg_sleep(2);\n")
    args = ["psql", "-q", "-o", "/dev/null", "-v", "ON_ERROR_STOP=1", f"{SERVER}/{database}", "-f", wrapped]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as run:
        pid = int(run.stdout.readline())
        assert run.stdout.readline().strip() == "started"
        before = cpu_seconds(pid)
        line = run.stdout.readline().strip()
        if line != "finished":
            raise SystemExit(f"the script failed: {line!r}")
        spent = cpu_seconds(pid) - before
    if run.returncode:
        raise SystemExit(f"psql failed ({run.returncode})")
    return spent


def script(variant, first_seat):
    v = VARIANTS[variant]
    lines, seat = [], first_seat
    for _ in range(GROUPS):
        orders, seats = [], []
        for _ in range(GROUP_SIZE):
            order, seat = str(uuid.uuid4()), seat + 1
            orders.append([order, "e", "h", "pending", 100, 1_700_000_000_000, 1_700_000_600_000])
            seats.append([order, "e", f"A-{seat}"])
        rows = lambda r: json.dumps(r).replace("'", "''")
        lines += [
            "BEGIN;",
            f"INSERT INTO orders_{variant} (id, event_id, holder, status, amount_cents, created_at, expires_at)"
            f" SELECT CAST(value ->> 0 AS UUID), {v['event']}, value ->> 2, value ->> 3,"
            f" CAST(value ->> 4 AS BIGINT), to_timestamp(CAST(value ->> 5 AS BIGINT) / 1000.0),"
            f" to_timestamp(CAST(value ->> 6 AS BIGINT) / 1000.0)"
            f" FROM jsonb_array_elements('{rows(orders)}'::jsonb);",
            f"INSERT INTO seats_{variant} (order_id, event_id, seat_id)"
            f" SELECT CAST(value ->> 0 AS UUID), value ->> 1, {v['seat']}"
            f" FROM jsonb_array_elements('{rows(seats)}'::jsonb) WHERE TRUE"
            f" ON CONFLICT (event_id, seat_id) WHERE live DO NOTHING RETURNING order_id, seat_id;",
            "COMMIT;",
        ]
    return "\n".join(lines)


def main():
    seats = GROUPS * GROUP_SIZE * ROUNDS
    psql("postgres", f"CREATE DATABASE {DATABASE}")
    try:
        psql(DATABASE, SCHEMA.format(seats=seats))
        for variant, v in VARIANTS.items():
            psql(DATABASE, TABLES.format(v=variant, **v))
        times = {variant: [] for variant in VARIANTS}
        with tempfile.TemporaryDirectory() as scratch:
            for round_ in range(ROUNDS):
                for variant in VARIANTS:
                    path = os.path.join(scratch, f"{variant}.sql")
                    with open(path, "w") as f:
                        f.write(script(variant, round_ * GROUPS * GROUP_SIZE))
                    spent = server_cpu_of(DATABASE, path)
                    per_order = spent / (GROUPS * GROUP_SIZE) * 1e6
                    times[variant].append(per_order)
                    print(f"round {round_ + 1}/{ROUNDS}: {variant} {per_order:.1f} µs per order",
                          file=sys.stderr)
        for variant, per_order in times.items():
            print(f"{variant}: " + " / ".join(f"{t:.1f}" for t in per_order) + " µs of the server's CPU per order")
    finally:
        psql("postgres", f"DROP DATABASE IF EXISTS {DATABASE}")


if __name__ == "__main__":
    main()
