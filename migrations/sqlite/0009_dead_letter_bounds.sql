-- Dead letters become bounded and manageable.
--
-- Each keeps the size and SHA-256 of the payload as received, so an operator can match it with what the sender
-- logged even when only an excerpt is kept; `kept_bytes` is what the row itself holds (raw, topic, reason), which
-- the retention bound `[dead_letters] max_total` adds up. A dismissed letter stays until retention removes it,
-- but no longer counts in the index header.
ALTER TABLE dead_letters ADD COLUMN size INTEGER NOT NULL DEFAULT 0;   -- bytes of the payload as received
ALTER TABLE dead_letters ADD COLUMN sha256 TEXT;                       -- of those bytes, hex; NULL before 0009
ALTER TABLE dead_letters ADD COLUMN kept_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN dismissed_ms INTEGER;
ALTER TABLE dead_letters ADD COLUMN dismissed_by TEXT;                 -- the user name, as the audit log keeps it

-- Letters kept before: the masked text is all there is, so its length stands for the payload's.
UPDATE dead_letters SET size = length(CAST(raw AS BLOB));
-- An oversized body was kept whole before; keep what a new one keeps, its first 1 KiB.
UPDATE dead_letters SET raw = substr(raw, 1, 1024) WHERE size > 65536;
UPDATE dead_letters
   SET kept_bytes = length(CAST(raw AS BLOB)) + length(CAST(topic AS BLOB)) + length(CAST(reason AS BLOB));

-- The page's default list walks the letters not dismissed, newest first.
CREATE INDEX dead_letters_open ON dead_letters (id) WHERE dismissed_ms IS NULL;
-- The header's count, the totals and the size bound read only this, never the rows' text.
CREATE INDEX dead_letters_kept ON dead_letters (id, kept_bytes, dismissed_ms);
