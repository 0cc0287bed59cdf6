//! The audit log in PostgreSQL: one hash chain, appended under a lock so concurrent daemons never fork it.
