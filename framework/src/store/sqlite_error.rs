//! What a SQLite failure means for the person: a full disk, a permission,
//! a lock held by another process, or real damage.
//!
//! Telling these apart matters: "the store is corrupt, restore a backup" on
//! a full disk would have someone throw away good data. Every store error
//! built from a `sqlx::Error` goes through [`classify`].

use std::path::Path;

use crate::error::KonnectorError;

/// SQLite's primary result codes we tell apart (the low byte of the
/// extended code sqlx reports).
mod code {
    pub const PERM: i64 = 3;
    pub const BUSY: i64 = 5;
    pub const LOCKED: i64 = 6;
    pub const READONLY: i64 = 8;
    pub const IOERR: i64 = 10;
    pub const CORRUPT: i64 = 11;
    pub const FULL: i64 = 13;
    pub const CANTOPEN: i64 = 14;
    pub const AUTH: i64 = 23;
    pub const NOTADB: i64 = 26;
}

/// What kind of failure a SQLite error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The disk (or the quota) is full.
    DiskFull,
    /// The file or its folder may not be read or written by this user.
    Permission,
    /// Another process holds the database's lock.
    Locked,
    /// The file is damaged or not a SQLite database.
    Corrupt,
    /// Anything else (a bug, an I/O error of the device).
    Other,
}

/// Classifies a sqlx error.
pub fn failure(e: &sqlx::Error) -> Failure {
    if let Some(db) = e.as_database_error() {
        let extended = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
        let message = db.message().to_ascii_lowercase();
        return match extended & 0xff {
            code::FULL => Failure::DiskFull,
            code::PERM | code::READONLY | code::AUTH => Failure::Permission,
            code::BUSY | code::LOCKED => Failure::Locked,
            code::CORRUPT | code::NOTADB => Failure::Corrupt,
            code::CANTOPEN if message.contains("permission") => Failure::Permission,
            code::IOERR if message.contains("disk is full") => Failure::DiskFull,
            _ if message.contains("disk is full") => Failure::DiskFull,
            _ => Failure::Other,
        };
    }
    if let sqlx::Error::Io(io) = e {
        return io_failure(io);
    }
    let text = e.to_string().to_ascii_lowercase();
    if text.contains("disk is full") || text.contains("no space left") {
        Failure::DiskFull
    } else {
        Failure::Other
    }
}

/// Classifies an I/O error.
pub fn io_failure(e: &std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Failure::DiskFull,
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            Failure::Permission
        }
        _ => Failure::Other,
    }
}

/// The error for `what` failing on the store at `path`, with the code and
/// wording its kind calls for: `DISK_QUOTA_EXCEEDED` for a full disk,
/// `UNKNOWN_ERROR.STORE_FAILED` otherwise, the cause named in words.
pub fn classify(what: &str, path: &Path, e: &sqlx::Error) -> KonnectorError {
    let mut kind = failure(e);
    // SQLite reports some writes on a full disk as a plain I/O error
    // (growing the WAL index, `SQLITE_IOERR_SHMSIZE`): ask the disk.
    if kind == Failure::Other && is_io_error(e) && disk_is_full(path) {
        kind = Failure::DiskFull;
    }
    // "unable to open database file" says nothing of why: ask the file
    // system whether it is a permission.
    if kind == Failure::Other && is_code(e, code::CANTOPEN) && permission_denied(path) {
        kind = Failure::Permission;
    }
    worded(what, &path.display().to_string(), kind, e)
}

/// [`classify`] for a caller that holds a pool but not its file's path
/// (the scheduler's queue): the path is read from the pool's options.
pub fn classify_pool(what: &str, pool: &sqlx::SqlitePool, e: &sqlx::Error) -> KonnectorError {
    let options = pool.connect_options();
    classify(what, options.get_filename(), e)
}

/// [`classify`] where the file is not known: no disk probe, so a full disk
/// that SQLite reports as a plain I/O error stays `STORE_FAILED`.
pub fn classify_unlocated(what: &str, e: &sqlx::Error) -> KonnectorError {
    worded(what, "the store", failure(e), e)
}

fn worded(what: &str, p: &str, kind: Failure, e: &sqlx::Error) -> KonnectorError {
    match kind {
        Failure::DiskFull => KonnectorError::disk_full(format!(
            "{what} failed: the disk holding {p} is full ({e}); nothing of this operation was written, the store is intact: free some space and try again"
        )),
        Failure::Permission => KonnectorError::store(format!(
            "{what} failed: no permission to read or write {p} or its folder ({e}); the store is not damaged: check the files' owner and mode"
        )),
        Failure::Locked => KonnectorError::store(format!(
            "{what} failed: the store {p} stayed locked by another Gleaner process ({e}); try again"
        )),
        Failure::Corrupt => KonnectorError::store(format!(
            "{what} failed: the store {p} is damaged or not a Gleaner store ({e}); keep a copy of it, then restore a backup"
        )),
        Failure::Other => KonnectorError::store(format!("{what} failed in {p}: {e}")),
    }
}

/// Whether `e` is a SQLite error of the primary code `primary`.
fn is_code(e: &sqlx::Error, primary: i64) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|c| c & 0xff == primary)
}

/// Whether opening `path` (or, when it does not exist, creating a file
/// beside it) is refused for want of permission.
fn permission_denied(path: &Path) -> bool {
    let denied = |r: std::io::Result<std::fs::File>| matches!(r, Err(e) if io_failure(&e) == Failure::Permission);
    if path.exists() {
        return denied(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path),
        );
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".gleaner-permission-probe-{}", std::process::id()));
    let result = std::fs::File::create(&probe);
    let _ = std::fs::remove_file(&probe);
    denied(result)
}

/// Whether `e` is SQLite's `SQLITE_IOERR` family or an I/O error.
fn is_io_error(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_)) || is_code(e, code::IOERR)
}

/// Whether the disk holding `path` refuses a small write for want of
/// space: a probe file of 64 KiB beside it, removed at once.
pub fn disk_is_full(path: &Path) -> bool {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".gleaner-space-probe-{}", std::process::id()));
    let result = std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(&[0u8; 64 * 1024]).and_then(|()| f.sync_all()));
    let _ = std::fs::remove_file(&probe);
    matches!(result, Err(e) if io_failure(&e) == Failure::DiskFull)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_told_apart() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(io_failure(&full), Failure::DiskFull);
        let perm = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(io_failure(&perm), Failure::Permission);
        let e = classify(
            "saving",
            Path::new("/x/gleaner.db"),
            &sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::StorageFull)),
        );
        assert_eq!(e.code, crate::ErrorCode::DiskQuotaExceeded);
        assert!(e.message.contains("is full"), "{}", e.message);
        assert!(!e.message.contains("corrupt"), "{}", e.message);
    }

    #[test]
    fn every_classified_error_names_the_store_as_its_source() {
        for kind in [
            std::io::ErrorKind::StorageFull,
            std::io::ErrorKind::PermissionDenied,
            std::io::ErrorKind::Other,
        ] {
            let e = classify(
                "reading the account",
                Path::new("/x/gleaner.db"),
                &sqlx::Error::Io(std::io::Error::from(kind)),
            );
            assert_eq!(e.source_kind(), Some(crate::SourceKind::Store), "{kind:?}");
            assert!(!e.needs_user(), "{kind:?}");
        }
        let e = classify_unlocated("job queue", &sqlx::Error::PoolTimedOut);
        assert_eq!(e.source_kind(), Some(crate::SourceKind::Store));
    }
}
