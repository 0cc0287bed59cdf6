-- Retention: personal data is kept only as long as it serves (`[retention]`, src/retention.rs).
--
-- The audit log's oldest rows may now go, but only behind a checkpoint. A purge first appends a checkpoint row
-- (action 'audit_checkpoint', chained like any other) whose detail names the rows it removes, as JSON:
-- {"removed": 1200, "first_id": 1, "last_id": 1200, "last_hash": "<hash of row 1200>", "before_ms": ...}, and
-- only then deletes them. `tillmark audit verify` starts the chain at the first row left, whose prev_hash must
-- be the hash a checkpoint recorded. The database still refuses every other delete: a row goes only when a
-- checkpoint written after it covers its id. Checkpoints are found by a partial index of their own.
CREATE INDEX audit_log_checkpoints ON audit_log (id) WHERE action = 'audit_checkpoint';

DROP TRIGGER audit_log_kept_on_delete;
CREATE TRIGGER audit_log_kept_on_delete BEFORE DELETE ON audit_log
WHEN NOT EXISTS (
    SELECT 1 FROM audit_log c
     WHERE c.action = 'audit_checkpoint' AND c.id > old.id
       AND json_extract(c.detail, '$.first_id') <= old.id
       AND json_extract(c.detail, '$.last_id') >= old.id
)
BEGIN
    SELECT RAISE(ABORT, 'the audit log is only ever added to: a row goes only behind a retention checkpoint');
END;

-- An event past retention goes with its case when the case is closed (an open case holds its event: legal
-- hold). The case history still refuses deletes, except of the cases the purge's own transaction lists here,
-- which it empties again before it commits; a closed case only.
CREATE TABLE retention_purging (event_seq INTEGER PRIMARY KEY);

DROP TRIGGER case_history_kept_on_delete;
CREATE TRIGGER case_history_kept_on_delete BEFORE DELETE ON case_history
WHEN NOT EXISTS (
    SELECT 1 FROM retention_purging p JOIN cases c ON c.event_seq = p.event_seq
     WHERE p.event_seq = old.event_seq AND c.state != 'open'
)
BEGIN
    SELECT RAISE(ABORT, 'the case history is only ever added to');
END;

