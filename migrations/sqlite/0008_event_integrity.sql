-- What makes an event trustworthy as evidence (contract v1.1).
--
-- `digest`: SHA-256 of what the event says. A message repeating a stored (store, id) with the same digest is a
--   redelivery and changes nothing; with another digest it is an id used again for something else: it is
--   dead-lettered, and `reused` counts such attempts so the index shows the original with a warning.
--   NULL for events stored before this migration, which are never called reused.
-- `signed`: what the signature check found: NULL not checked (signing off), 0 unsigned, 1 signed with the
--   register's key.
ALTER TABLE events ADD COLUMN digest TEXT;
ALTER TABLE events ADD COLUMN reused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN signed INTEGER;

-- Keys this installation made for itself, such as the one that keys the digest of identifiers that held a
-- card number. Made once, on first use; never shown.
CREATE TABLE installation_keys (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
