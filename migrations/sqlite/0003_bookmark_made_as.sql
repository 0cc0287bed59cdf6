-- What a realtime vendor made instead of a live mark when the event came too late (an export or clip of the
-- window), so the index can say so; NULL for a bookmark made as itself.
ALTER TABLE bookmarks ADD COLUMN made_as TEXT;
