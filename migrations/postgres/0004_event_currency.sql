-- Each event is sold in its own currency (prices are hundredths of it); the
-- events created before this were all sold in euros.
ALTER TABLE events ADD COLUMN currency TEXT NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$');
