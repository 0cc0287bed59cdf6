-- Search of the event list: words in receipt lines, reason, transaction number and cashier, and the index the
-- bookmark state filter needs once a store has millions of events.
--
-- Trigram tokens, because registers print Japanese, which has no spaces for a word tokenizer to split on: the
-- default unicode61 tokenizer would index 'お客様都合による返品' as one word, and '返品' would never find it.
-- Trigrams match any substring of three characters or more (case-insensitively); shorter words are looked up
-- with LIKE on the events table (see `push_search` in src/store/sqlite.rs).
--
-- Contentless (content = ''): the index holds the receipt lines as text, one per line, decoded from the JSON
-- array in events.lines. An external-content table would read events.lines back as raw JSON whenever FTS5
-- consults its content (a 'rebuild', an integrity check) and disagree with what was indexed; contentless keeps
-- no second copy of the text either. contentless_delete (SQLite 3.43, bundled with sqlx) lets a row be removed
-- by its rowid alone. The rowid is the event's seq.
CREATE VIRTUAL TABLE events_search USING fts5 (
    lines, reason, txn, cashier,
    tokenize = 'trigram',
    content = '',
    contentless_delete = 1
);

-- Kept in step by triggers rather than by the store's ingest code, so that every write to events (ingest
-- today, a retention job or an operator's fix in the sqlite3 shell tomorrow) updates the index in the same
-- transaction: the two cannot disagree, and an acknowledged event is searchable as soon as it is listed.
CREATE TRIGGER events_search_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_search (rowid, lines, reason, txn, cashier)
    VALUES (new.seq, (SELECT group_concat(value, char(10)) FROM json_each(new.lines)), new.reason, new.txn, new.cashier);
END;

CREATE TRIGGER events_search_delete AFTER DELETE ON events BEGIN
    DELETE FROM events_search WHERE rowid = old.seq;
END;

CREATE TRIGGER events_search_update AFTER UPDATE OF lines, reason, txn, cashier ON events BEGIN
    DELETE FROM events_search WHERE rowid = old.seq;
    INSERT INTO events_search (rowid, lines, reason, txn, cashier)
    VALUES (new.seq, (SELECT group_concat(value, char(10)) FROM json_each(new.lines)), new.reason, new.txn, new.cashier);
END;

-- Events stored before this migration.
INSERT INTO events_search (rowid, lines, reason, txn, cashier)
SELECT seq, (SELECT group_concat(value, char(10)) FROM json_each(lines)), reason, txn, cashier FROM events;

-- Events with a failed or pending bookmark, found from the few such bookmarks rather than by walking every event.
CREATE INDEX bookmarks_state_event ON bookmarks (state, event_seq);
