-- Contract v1.1 `sent_at`: when the register or bridge sent the message. With it the index tells a message that
-- waited in a queue (arrived late) from a register whose clock is off (skewed); NULL when the register sent none.
ALTER TABLE events ADD COLUMN sent_at TEXT;     -- as the register sent it (RFC 3339, its own offset)
ALTER TABLE events ADD COLUMN sent_at_ms INTEGER;
