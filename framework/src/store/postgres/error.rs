//! What a PostgreSQL failure means for the person: a server out of reach,
//! a full disk, a refused permission, a conflict worth retrying, or
//! anything else; always a store error naming the database (its URL
//! without the password), never a panic.

use crate::error::KonnectorError;

/// The error for `what` failing on the database at `place` (a URL without
/// its password): `DISK_QUOTA_EXCEEDED` for a full disk,
/// `UNKNOWN_ERROR.STORE_FAILED` otherwise, the cause named in words.
pub fn classify(what: &str, place: &str, e: &sqlx::Error) -> KonnectorError {
    if let Some(db) = e.as_database_error() {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        return match code.as_str() {
            // disk_full
            "53100" => KonnectorError::disk_full(format!(
                "{what} failed: the disk of the PostgreSQL server at {place} is full ({e}); nothing of this operation was written: free some space on the server and try again"
            )),
            // insufficient_privilege
            "42501" => KonnectorError::store(format!(
                "{what} failed: the database user may not do this in {place} ({e}); check the user's privileges on the store's tables"
            )),
            // serialization_failure, deadlock_detected
            "40001" | "40P01" => KonnectorError::store(format!(
                "{what} failed in {place}: it met another Gleaner process's writes ({e}); nothing was written: try again"
            )),
            c if c.starts_with("08") || c.starts_with("57P") => KonnectorError::store(format!(
                "{what} failed: the connection to the PostgreSQL server at {place} was lost ({e}); check that the server is running, then try again"
            )),
            _ => KonnectorError::store(format!("{what} failed in {place}: {e}")),
        };
    }
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => KonnectorError::store(format!(
            "{what} failed: the PostgreSQL server at {place} did not answer ({e}); check that it is running and reachable"
        )),
        _ => KonnectorError::store(format!("{what} failed in {place}: {e}")),
    }
}

/// The error for a connection that could not be opened at all.
pub fn connect_error(place: &str, e: &sqlx::Error) -> KonnectorError {
    if let Some(db) = e.as_database_error() {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let check = match code.as_str() {
            // invalid_password, invalid_authorization_specification
            "28P01" | "28000" => "check the user and password in the URL",
            // invalid_catalog_name
            "3D000" => {
                "the database does not exist: create it (createdb) or fix the URL's database name"
            }
            _ => "check the URL's user, password and database",
        };
        return KonnectorError::store(format!(
            "cannot open the PostgreSQL store at {place}: the server refused ({e}); {check}"
        ));
    }
    KonnectorError::store(format!(
        "cannot connect to the PostgreSQL store at {place} ({e}); check that the server is running and accepts connections at that host and port"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_servers_are_store_errors_naming_the_place() {
        let e = classify(
            "reading",
            "postgres://u@db.example:5432/g",
            &sqlx::Error::PoolTimedOut,
        );
        assert_eq!(e.code, crate::ErrorCode::StoreFailed);
        assert!(e.message.contains("db.example"), "{}", e.message);
        let e = connect_error(
            "postgres://u@db.example:5432/g",
            &sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        );
        assert!(e.message.contains("db.example"), "{}", e.message);
        assert_eq!(e.source_kind(), Some(crate::SourceKind::Store));
    }

    #[test]
    fn passwords_are_removed_from_urls() {
        assert_eq!(
            super::super::redact_url("postgres://me:secret@db:5432/g"),
            "postgres://me@db:5432/g"
        );
        assert!(!super::super::redact_url("me:secret@db").contains("secret"));
    }
}
