-- Who holds a bookmark's lease: the daemon instance's name (its MQTT client id). A daemon starting up releases
-- only its own old leases, so a restarted daemon takes its rows again at once while another daemon's live
-- leases stand until they expire. NULL for leases taken before this migration, which were this file's one
-- daemon's.
ALTER TABLE bookmarks ADD COLUMN claimed_by TEXT;
