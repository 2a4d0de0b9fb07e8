-- The proof of work each new place in an event's line costs: the leading zero
-- bits a join's solution needs. 0 (every event created before this) is off.
ALTER TABLE events ADD COLUMN join_challenge_bits INTEGER NOT NULL DEFAULT 0
    CHECK (join_challenge_bits BETWEEN 0 AND 32);
