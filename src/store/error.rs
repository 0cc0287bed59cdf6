//! What went wrong in the database, by what the caller should do about it: wait and retry, fetch an operator,
//! or answer that the request collides with what is stored. The web, ingest and delivery act on the kind, and
//! `/healthz` names it, so a full disk is one clear ERROR and a health check that says why rather than an
//! endless stream of retries.

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value this build cannot read (a role, a state, JSON it did not write), or a URL it cannot open.
    #[error("{0}")]
    Invalid(String),
}

/// What a store error asks of whoever meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The database cannot be reached or is busy for now (a restart, a network cut, a lock, too many
    /// connections): retry, it will pass.
    Unavailable,
    /// No room left (disk or quota): nothing written until an operator frees space. Retrying only waits.
    Full,
    /// The request collides with what is stored (a unique or foreign key): answered as a conflict, not retried.
    Conflict,
    /// The file or a stored value is damaged, or the schema is not one this build knows: an operator must act.
    Corrupt,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Full => "full",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Corrupt => "corrupt",
        }
    }

    /// Whether waiting can end it; otherwise someone has to act, and it is logged at ERROR once.
    pub fn passes(self) -> bool {
        matches!(self, ErrorKind::Unavailable)
    }

    /// What an operator reads in the log and on `/healthz`.
    pub fn advice(self) -> &'static str {
        match self {
            ErrorKind::Unavailable => "the database is unreachable or busy; retrying",
            ErrorKind::Full => {
                "the database's disk is full: free space (or raise the quota); nothing is acknowledged until then"
            }
            ErrorKind::Conflict => "a write collided with a stored row",
            ErrorKind::Corrupt => {
                "the database is damaged or of another version: restore it or run the matching tillmark"
            }
        }
    }
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Database(e) => kind_of(e),
            StoreError::Migrate(_) | StoreError::Invalid(_) => ErrorKind::Corrupt,
        }
    }
}

fn kind_of(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => match code.parse::<i32>() {
                Ok(sqlite) => sqlite_kind(sqlite),
                Err(_) => sqlstate_kind(&code),
            },
            None => ErrorKind::Unavailable,
        },
        // A row or column this build expected and did not find, or could not decode: the schema or the data is
        // not what it wrote.
        sqlx::Error::RowNotFound
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::Decode(_) => ErrorKind::Corrupt,
        // I/O, TLS, protocol, pool timeouts and closed pools: the connection, not the data.
        _ => ErrorKind::Unavailable,
    }
}

/// SQLite's result codes (<https://www.sqlite.org/rescode.html>): the primary code is the low byte of the
/// extended one sqlx reports.
fn sqlite_kind(code: i32) -> ErrorKind {
    const READONLY: i32 = 8;
    const CORRUPT: i32 = 11;
    const FULL: i32 = 13;
    const CONSTRAINT: i32 = 19;
    const NOTADB: i32 = 26;
    match code & 0xff {
        FULL => ErrorKind::Full,
        CORRUPT | NOTADB => ErrorKind::Corrupt,
        CONSTRAINT => ErrorKind::Conflict,
        // A read-only file or directory is an operator's to fix as much as a full disk.
        READONLY => ErrorKind::Full,
        // Busy, locked, out of memory, I/O errors, a file that cannot be opened yet: all pass.
        _ => ErrorKind::Unavailable,
    }
}

/// PostgreSQL's SQLSTATE codes (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn sqlstate_kind(code: &str) -> ErrorKind {
    match code {
        // disk_full; program_limit_exceeded's statement_too_complex is not a disk, but 53100 is.
        "53100" => ErrorKind::Full,
        "XX001" | "XX002" => ErrorKind::Corrupt,
        // Undefined table or column: the schema is not this build's.
        "42P01" | "42703" => ErrorKind::Corrupt,
        _ if code.starts_with("23") => ErrorKind::Conflict,
        // Connection exceptions (08), insufficient resources other than disk (53), operator intervention such
        // as a shutdown (57), serialization failures and deadlocks (40): all pass.
        _ => ErrorKind::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_by_what_to_do() {
        assert_eq!(sqlite_kind(13), ErrorKind::Full);
        assert_eq!(sqlite_kind(11), ErrorKind::Corrupt);
        assert_eq!(sqlite_kind(26), ErrorKind::Corrupt);
        // SQLITE_CONSTRAINT_UNIQUE is 2067: the primary code is its low byte.
        assert_eq!(sqlite_kind(2067), ErrorKind::Conflict);
        assert_eq!(sqlite_kind(5), ErrorKind::Unavailable);
        // SQLITE_IOERR_WRITE (778) passes; SQLITE_READONLY_DIRECTORY (1544) needs an operator.
        assert_eq!(sqlite_kind(778), ErrorKind::Unavailable);
        assert_eq!(sqlite_kind(1544), ErrorKind::Full);
    }

    #[test]
    fn postgres_sqlstates_by_what_to_do() {
        assert_eq!(sqlstate_kind("53100"), ErrorKind::Full);
        assert_eq!(sqlstate_kind("23505"), ErrorKind::Conflict);
        assert_eq!(sqlstate_kind("XX001"), ErrorKind::Corrupt);
        assert_eq!(sqlstate_kind("57P01"), ErrorKind::Unavailable);
        assert_eq!(sqlstate_kind("08006"), ErrorKind::Unavailable);
        assert_eq!(sqlstate_kind("40001"), ErrorKind::Unavailable);
    }

    #[test]
    fn a_lost_connection_passes_and_a_value_this_build_cannot_read_does_not() {
        let io = StoreError::Database(sqlx::Error::Io(std::io::Error::other("reset")));
        assert_eq!(io.kind(), ErrorKind::Unavailable);
        assert!(io.kind().passes());
        let bad = StoreError::Invalid("user role \"boss\"".into());
        assert_eq!(bad.kind(), ErrorKind::Corrupt);
        assert!(!bad.kind().passes());
    }
}
