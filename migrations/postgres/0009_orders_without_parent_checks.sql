-- Each hold writes an order and its seats. Their foreign keys to `events` and
-- `seats` had every insert fire a trigger that looked the parent up and locked
-- it (`FOR KEY SHARE`): every order of an event locked its one `events` row,
-- a MultiXact as soon as two processes' transactions overlap. The insert now
-- looks both up itself and is refused the same way when one is not there
-- (record/mod.rs, `insert_group`), without the triggers and the locks:
-- `bench/order_checks.py` read 4–14 µs less of the server's CPU per order, of
-- the 18–22 µs the keys cost (docs/benchmarks.md). An order's seats still
-- belong to their order, and a seat is in at most one live order
-- (`seat_live_unique`). SQLite keeps its keys: it cannot drop one without
-- rebuilding the table, and its checks take no locks.
--
-- What goes with the keys: `ON DELETE CASCADE` from an event to its orders.
-- Anteroom never deletes an event or a seat; one deleted by hand now leaves
-- its orders behind (and an order whose seat is gone reads without it). While
-- a deployment rolls from a build before this one, the older instances insert
-- orders unchecked.
ALTER TABLE orders DROP CONSTRAINT orders_event_id_fkey;
ALTER TABLE order_seats DROP CONSTRAINT order_seats_event_id_seat_id_fkey;
