-- The flagged drawer opens of a register, by moment: what each stored sale, refund or paid in/out looks for
-- (explain_drawer_opens in src/store/postgres/mod.rs). Without it PostgreSQL reads that register's every event
-- within the window through events_register_at and drops all but the drawer opens: at 2,500 events a second on
-- one register, seconds per ingest batch (measured by `cargo bench --bench pipeline`: p50 3.3 s from publish to
-- bookmark). Drawer opens are few, flagged ones fewer: the index is small and exact. SQLite's planner reaches
-- them through events_type_at on its own.
CREATE INDEX events_flagged_drawer_opens ON events (store, register, at_ms) WHERE type = 'drawer_open' AND flagged;
