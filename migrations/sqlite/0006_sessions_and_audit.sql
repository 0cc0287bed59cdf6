-- Signed-in browsers and the audit log.
--
-- A session is known by the SHA-256 digest of its cookie, like API tokens: a copy of the database signs nobody
-- in. Each session has its own CSRF token, which every form of the index carries back.
CREATE TABLE sessions (
    digest     TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    seen_ms    INTEGER NOT NULL,                  -- last request: an idle session ends
    address    TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Who did what, when: sign-ins (and refused ones, which sign-in throttling counts), footage opened, exports,
-- case changes. Names are kept as text, not user ids, so the log still reads after a user is removed.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    actor    TEXT,                                -- the user name; for a refused sign-in, the name typed
    address  TEXT,                                -- the client's address
    action   TEXT    NOT NULL,                    -- sign_in, sign_in_refused, sign_out, footage_opened, ...
    target   TEXT,                                -- what it was done to: an event, an export's filters
    detail   TEXT
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_refused_actor ON audit_log (actor, at_ms) WHERE action = 'sign_in_refused';
CREATE INDEX audit_log_refused_address ON audit_log (address, at_ms) WHERE action = 'sign_in_refused';
