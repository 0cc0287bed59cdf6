//! Dead letters in PostgreSQL.
