-- The audit log as evidence. Each row keeps the SHA-256 of the row before it (prev_hash) and of that link with
-- its own content (hash; see src/store/audit.rs), so altering or removing a row breaks the chain where it was
-- done and `tillmark audit verify` names it. The database refuses edits and removals outright, as for the case
-- history. Rows from before this migration have no hashes: the chain begins after them.
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;

CREATE TRIGGER audit_log_kept_on_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is only ever added to');
END;
CREATE TRIGGER audit_log_kept_on_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is only ever added to');
END;

-- The sign-in throttle asks whether a name has signed in from an address lately.
CREATE INDEX audit_log_sign_in ON audit_log (actor, address, at_ms) WHERE action = 'sign_in';
