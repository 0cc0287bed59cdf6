-- Cases: an investigator flags an event for follow-up, writes notes, and closes it as explained or escalated
-- with a reason; it can be reopened. One case per event.
--
-- `cases` holds where each case stands, for the list's badge and filter; `case_history` is the record of
-- every change, which is evidence: rows are only ever added, and the triggers refuse an update or a delete
-- from anything, this daemon included.
CREATE TABLE cases (
    event_seq   INTEGER PRIMARY KEY REFERENCES events (seq),
    state       TEXT    NOT NULL CHECK (state IN ('open', 'explained', 'escalated')),
    opened_ms   INTEGER NOT NULL,
    opened_by   TEXT    NOT NULL,
    changed_ms  INTEGER NOT NULL
);
CREATE INDEX cases_state ON cases (state, event_seq);

CREATE TABLE case_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq   INTEGER NOT NULL REFERENCES cases (event_seq),
    at_ms       INTEGER NOT NULL,
    actor       TEXT    NOT NULL,                 -- the user name, kept as text like the audit log's
    action      TEXT    NOT NULL CHECK (action IN ('opened', 'noted', 'closed', 'reopened')),
    outcome     TEXT    CHECK (outcome IN ('explained', 'escalated')),
    text        TEXT                              -- the note, or the reason for closing or reopening
);
CREATE INDEX case_history_event ON case_history (event_seq, id);

CREATE TRIGGER case_history_kept_on_update BEFORE UPDATE ON case_history
BEGIN
    SELECT RAISE(ABORT, 'the case history is only ever added to');
END;
CREATE TRIGGER case_history_kept_on_delete BEFORE DELETE ON case_history
BEGIN
    SELECT RAISE(ABORT, 'the case history is only ever added to');
END;
