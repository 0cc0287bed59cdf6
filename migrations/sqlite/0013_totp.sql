-- An optional second factor (`tillmark user totp NAME`): the person's TOTP key in base32, and the last time step
-- a code was accepted for, so no code signs in twice.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;

-- Sign-ins whose password was right and whose code is still to come. Like a session, each is known by the
-- SHA-256 digest of its cookie, and lasts a few minutes.
CREATE TABLE sign_in_challenges (
    digest     TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL
);
CREATE INDEX sign_in_challenges_user ON sign_in_challenges (user_id);
