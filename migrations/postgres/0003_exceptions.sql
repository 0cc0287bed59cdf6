-- Exceptions: what the `[[rules]]` found. One per rule and event, so looking at an event again (a second daemon,
-- a restart in the middle of a step) never doubles one. The event's rows go with it when retention removes it.
CREATE TABLE exceptions (
    rule      TEXT   NOT NULL,
    event_seq BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    severity  TEXT   NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    why       TEXT   NOT NULL,   -- from the rule and numbers only: no receipt text, no name
    found_ms  BIGINT NOT NULL,
    PRIMARY KEY (rule, event_seq)
);
CREATE INDEX exceptions_event ON exceptions (event_seq);

-- The events the rules have not looked at yet. A trigger fills it, so ingest's statements stay as they were and
-- an event can never be stored without joining it; the rules' evaluator empties it in its own transactions.
-- A queue rather than a cursor on `seq`: two daemons' ingest transactions may commit out of sequence order, and
-- a cursor would step over the one that committed last.
CREATE TABLE rule_backlog (
    event_seq BIGINT PRIMARY KEY REFERENCES events (seq) ON DELETE CASCADE
);
CREATE FUNCTION rule_backlog_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rule_backlog (event_seq) VALUES (NEW.seq);
    RETURN NULL;
END
$$;
CREATE TRIGGER events_rule_backlog AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION rule_backlog_add();
