-- Each bookmark's moment on its camera's clock: the register's moment plus the camera's clock offset. Point
-- markers are placed at it, and a later change of the offset does not move bookmarks already planned.
--
-- SQLite cannot add a NOT NULL column without a default, and a default (such as 0) would silently put a
-- forgotten moment in 1970; the column stays nullable, every insert sets it, and a NULL fails loudly on read.
ALTER TABLE bookmarks ADD COLUMN moment_ms INTEGER;

-- Rows planned before offsets existed were planned at the register's own moment.
UPDATE bookmarks SET moment_ms = (SELECT at_ms FROM events WHERE events.seq = bookmarks.event_seq);
