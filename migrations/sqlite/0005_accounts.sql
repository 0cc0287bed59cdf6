-- People who use the index, and their personal API tokens.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL,                -- owner | manager | investigator | integrator
    stores        TEXT    NOT NULL DEFAULT '[]',   -- JSON array: the stores a manager or investigator sees
    password_hash TEXT    NOT NULL,                -- argon2id, PHC string
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label        TEXT    NOT NULL,
    digest       TEXT    NOT NULL UNIQUE,          -- SHA-256 of the token, hex; the token itself is never stored
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
