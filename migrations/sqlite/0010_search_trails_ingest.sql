-- The search index trails ingest instead of riding in its transactions.
--
-- Trigram indexing cost every ingest transaction nine tenths of its speed (138,000 plain inserts a second,
-- 13,500 with the insert trigger). Now the daemon's indexer (src/indexer.rs) indexes what ingest stored, a
-- moment later, in transactions of its own, and a search reads events the indexes do not hold yet from the
-- events table itself (see `push_search` in src/store/sqlite.rs): a stored event is found at once either way.
DROP TRIGGER events_search_insert;

-- One- and two-character words ('返品', '鮭', 'c2') have no trigram. Each event's distinct unigrams and bigrams
-- of every receipt line, the reason, the transaction number and the cashier, ASCII letters lowercased as LIKE
-- compares them, go here as tokens: the hex of their UTF-8 bytes, so the ascii tokenizer keeps each whole and
-- no character of a receipt can be query syntax. A word is found by one token, not by a scan of every event.
-- detail = 'none': a token is present or not; positions would only make the index bigger.
CREATE VIRTUAL TABLE events_grams USING fts5 (
    grams,
    tokenize = 'ascii',
    content = '',
    contentless_delete = 1,
    detail = 'none'
);

-- How far the indexes reach, in one row. events_search holds every event with seq <= seq, and events_grams
-- every one with seq <= grams_seq (never more than seq), except those in search_stale. The indexer moves them
-- in the same transaction as the rows they cover, so a restart resumes where the last commit ended.
CREATE TABLE search_watermark (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    seq       INTEGER NOT NULL,
    grams_seq INTEGER NOT NULL
);

-- Events the trigger stored before this migration are in events_search already; their grams come next, from
-- the indexer, oldest first.
INSERT INTO search_watermark (one, seq, grams_seq) SELECT 1, COALESCE(MAX(seq), 0), 0 FROM events;

-- Events whose searched text changed after they were indexed: out of both indexes until the indexer takes
-- them again, and meanwhile read from the events table like events not indexed yet.
CREATE TABLE search_stale (seq INTEGER PRIMARY KEY);

DROP TRIGGER events_search_delete;
CREATE TRIGGER events_search_delete AFTER DELETE ON events BEGIN
    DELETE FROM events_search WHERE rowid = old.seq;
    DELETE FROM events_grams WHERE rowid = old.seq;
    DELETE FROM search_stale WHERE seq = old.seq;
END;

DROP TRIGGER events_search_update;
CREATE TRIGGER events_search_update AFTER UPDATE OF seq, lines, reason, txn, cashier ON events BEGIN
    DELETE FROM events_search WHERE rowid = old.seq;
    DELETE FROM events_grams WHERE rowid = old.seq;
    DELETE FROM search_stale WHERE seq = old.seq;
    INSERT OR IGNORE INTO search_stale (seq)
    SELECT new.seq FROM search_watermark WHERE new.seq <= search_watermark.seq;
END;
