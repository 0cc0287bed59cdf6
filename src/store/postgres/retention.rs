//! Retention in PostgreSQL: purges in batches, erasure of one person.
