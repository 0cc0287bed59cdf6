//! Cases in PostgreSQL: where each stands and its append-only history.
