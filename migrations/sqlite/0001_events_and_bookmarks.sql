-- Register events, the bookmark outbox, and dead letters.
-- Times are integers: milliseconds since the Unix epoch (UTC).

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    store        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    event_key    TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    at           TEXT    NOT NULL,            -- as the register sent it (RFC 3339, its own offset)
    at_ms        INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,            -- when tillmark received it: skew = received_ms - at_ms
    register     TEXT    NOT NULL,
    cashier      TEXT,
    txn          TEXT,
    amount       INTEGER,
    currency     TEXT,
    reason       TEXT,
    lines        TEXT    NOT NULL DEFAULT '[]',  -- JSON array, card numbers masked
    attributes   TEXT    NOT NULL DEFAULT '{}',  -- JSON object
    raw          TEXT    NOT NULL,               -- the payload, card numbers masked
    topic        TEXT    NOT NULL,
    flagged      INTEGER NOT NULL,               -- its type is one that becomes a bookmark
    mapped       INTEGER NOT NULL,               -- some camera watches its register
    UNIQUE (store, id)
);
CREATE UNIQUE INDEX events_key ON events (event_key);
CREATE INDEX events_at ON events (at_ms DESC, seq DESC);
CREATE INDEX events_store_at ON events (store, at_ms DESC);
CREATE INDEX events_register_at ON events (store, register, at_ms DESC);
CREATE INDEX events_cashier_at ON events (cashier, at_ms DESC);
CREATE INDEX events_type_at ON events (type, at_ms DESC);

-- One row per bookmark to make: the outbox, written in the same transaction as its event.
CREATE TABLE bookmarks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq        INTEGER NOT NULL REFERENCES events (seq),
    system           TEXT    NOT NULL,
    device           TEXT    NOT NULL,
    camera           TEXT    NOT NULL,
    start_ms         INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending',   -- pending | made | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    claimed_until_ms INTEGER,
    in_flight        INTEGER NOT NULL DEFAULT 0,   -- an attempt started and has not reported back
    maybe_created    INTEGER NOT NULL DEFAULT 0,   -- an earlier attempt may have created it: look before creating
    vendor_id        TEXT,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    made_ms          INTEGER,
    UNIQUE (event_seq, system, device)
);
CREATE INDEX bookmarks_due ON bookmarks (state, next_attempt_ms) WHERE state = 'pending';
CREATE INDEX bookmarks_event ON bookmarks (event_seq);

-- Every attempt, for the event page: when, what happened.
CREATE TABLE bookmark_attempts (
    bookmark_id INTEGER NOT NULL REFERENCES bookmarks (id),
    at_ms       INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,   -- made | retry | failed
    detail      TEXT
);
CREATE INDEX bookmark_attempts_bookmark ON bookmark_attempts (bookmark_id, at_ms);

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    topic       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    raw         TEXT    NOT NULL    -- card numbers masked
);
CREATE INDEX dead_letters_received ON dead_letters (received_ms DESC);
