-- The alert outbox: one row per message an `[[alerts]]` section owes, claimed under a lease and retried like a
-- bookmark. An immediate alert's row is unique by (alert, rule, event): an exception is alerted once, however
-- many daemons plan it and however often they restart. A digest's row is unique by (alert, store, local day).
-- The planner never removes a row, so "already planned" is never forgotten; the event's rows go with it when
-- retention removes it.
CREATE TABLE alert_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    alert            TEXT    NOT NULL,
    store            TEXT    NOT NULL,
    rule             TEXT,                -- immediate: the exception's rule and event
    event_seq        INTEGER REFERENCES events (seq) ON DELETE CASCADE,
    day              TEXT,                -- digest: the store's local day, YYYY-MM-DD
    from_ms          INTEGER,             -- digest: the exceptions found in [from_ms, to_ms)
    to_ms            INTEGER,
    state            TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    claimed_by       TEXT,
    claimed_until_ms INTEGER,
    last_error       TEXT,                -- never a secret: built from status codes and transport errors
    created_ms       INTEGER NOT NULL,
    sent_ms          INTEGER,
    CHECK ((event_seq IS NOT NULL AND rule IS NOT NULL) OR day IS NOT NULL)
);
CREATE UNIQUE INDEX alert_outbox_exception ON alert_outbox (alert, rule, event_seq) WHERE event_seq IS NOT NULL;
CREATE UNIQUE INDEX alert_outbox_digest ON alert_outbox (alert, store, day) WHERE day IS NOT NULL;
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_ms) WHERE state = 'pending';
CREATE INDEX alert_outbox_event ON alert_outbox (event_seq);
-- What /healthz counts: the rows not sent, few however long the outbox grows.
CREATE INDEX alert_outbox_unsent ON alert_outbox (id) WHERE state <> 'sent';
-- The planner reads the exceptions found since it last looked, every second: by the moment they were found.
CREATE INDEX exceptions_found ON exceptions (found_ms);
