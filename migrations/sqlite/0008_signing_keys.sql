-- The public keys that have signed admission passes, and when each was last
-- noted signing (unix milliseconds, by the noting instance's clock): every
-- instance trusts, and lists in its JWKS, the keys that may have signed a
-- pass still in use.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    jwk            TEXT NOT NULL,
    last_signed_ms BIGINT NOT NULL
);
