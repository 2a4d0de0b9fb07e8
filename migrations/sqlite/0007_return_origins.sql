-- The sites (origins, such as https://shop.example) an event may send its
-- admitted visitors back to with their pass: a JSON array of strings. Events
-- created before this send nobody anywhere.
ALTER TABLE events ADD COLUMN return_origins TEXT NOT NULL DEFAULT '[]';
