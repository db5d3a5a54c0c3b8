//! The scheduler's error type.

use gleaner_framework::{KonnectorError, UserAction};

/// What can go wrong in the scheduler itself (not in a konnector run: a
/// run's failure is recorded on its job, it is not an error of the
/// scheduler).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The store failed (the message names the file and the statement).
    #[error("{0}")]
    Store(#[from] KonnectorError),
    /// A cron expression did not parse.
    #[error("bad cron expression `{expr}`: {reason}")]
    Cron {
        /// The expression.
        expr: String,
        /// Why it was refused.
        reason: String,
    },
    /// The scheduler's configuration is invalid.
    #[error("scheduler configuration: {0}")]
    Config(String),
    /// A job, account or answer the caller named does not exist or is in
    /// the wrong state.
    #[error("{0}")]
    NotFound(String),
    /// A code was given for an account none of whose runs waits for one.
    #[error("no run of account {account} is waiting for a code")]
    NoQuestion {
        /// The account.
        account: String,
    },
    /// Another run of the same account holds the account.
    #[error("account {account} is being imported by job #{job} ({state}); wait for it")]
    Busy {
        /// The account.
        account: String,
        /// The job holding it.
        job: i64,
        /// That job's state.
        state: String,
    },
    /// The queue's database was written by a version of Gleaner this build
    /// cannot read (a newer one): nothing was changed.
    #[error("{0}")]
    Schema(String),
}

impl SchedulerError {
    /// What the person can do about it: look at the account's jobs when a
    /// run holds it or none waits; a store error's own step (a full disk).
    pub fn next_step(&self) -> Option<UserAction> {
        match self {
            SchedulerError::Busy { .. } | SchedulerError::NoQuestion { .. } => {
                Some(UserAction::SeeJobs)
            }
            SchedulerError::Store(e) => e.next_step(),
            SchedulerError::Cron { .. }
            | SchedulerError::Config(_)
            | SchedulerError::NotFound(_)
            | SchedulerError::Schema(_) => None,
        }
    }

    /// A SQL failure of the job queue, classified (full disk, permission,
    /// damage) when the store's file is not at hand.
    pub(crate) fn sql(what: &str) -> impl Fn(sqlx::Error) -> SchedulerError + '_ {
        move |e| {
            SchedulerError::Store(gleaner_framework::store::sqlite_error::classify_unlocated(
                &format!("job queue: {what}"),
                &e,
            ))
        }
    }

    /// A SQL failure of the job queue on `pool`, classified with the
    /// store's file (a full disk is found even when SQLite only says
    /// "I/O error").
    pub(crate) fn sql_on<'a>(
        pool: &'a sqlx::SqlitePool,
        what: &'a str,
    ) -> impl Fn(sqlx::Error) -> SchedulerError + 'a {
        move |e| {
            SchedulerError::Store(gleaner_framework::store::sqlite_error::classify_pool(
                &format!("job queue: {what}"),
                pool,
                &e,
            ))
        }
    }
}

impl SchedulerError {
    /// A failure of the PostgreSQL job queue on `pool`, classified: a server
    /// that cannot be reached (named by host, port and database, never
    /// with its password), a full disk, a refused permission, a conflict
    /// with another worker that outlived its retries, or anything else.
    pub(crate) fn pg_on<'a>(
        pool: &'a sqlx::PgPool,
        what: &'a str,
    ) -> impl Fn(sqlx::Error) -> SchedulerError + 'a {
        move |e| pg_error(what, pool, &e)
    }
}

/// The server a pool talks to, without user nor password: `host:port/db`
/// (or the socket's folder).
pub(crate) fn pg_server(pool: &sqlx::PgPool) -> String {
    let o = pool.connect_options();
    let db = o.get_database().unwrap_or("postgres");
    match o.get_socket() {
        Some(dir) => format!("{} (socket)/{db}", dir.display()),
        None => format!("{}:{}/{db}", o.get_host(), o.get_port()),
    }
}

/// What a PostgreSQL failure means, as [`pg_failure`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgFailure {
    /// The server cannot be reached or dropped the connection.
    Unreachable,
    /// The server's disk is full.
    DiskFull,
    /// The role may not do this (or could not log in).
    Permission,
    /// Two transactions conflicted (serialization failure, deadlock): the
    /// operation may simply be tried again.
    Conflict,
    /// Anything else.
    Other,
}

/// Classifies a sqlx error of PostgreSQL by its SQLSTATE (or, without one,
/// by the kind of I/O failure).
pub(crate) fn pg_failure(e: &sqlx::Error) -> PgFailure {
    if let Some(db) = e.as_database_error() {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        return match code.as_str() {
            "40001" | "40P01" => PgFailure::Conflict,
            "53100" => PgFailure::DiskFull,
            "42501" => PgFailure::Permission,
            c if c.starts_with("28") => PgFailure::Permission,
            c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
                PgFailure::Unreachable
            }
            _ => PgFailure::Other,
        };
    }
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => PgFailure::Unreachable,
        _ => PgFailure::Other,
    }
}

/// The error for `what` failing on the PostgreSQL queue of `pool`.
pub(crate) fn pg_error(what: &str, pool: &sqlx::PgPool, e: &sqlx::Error) -> SchedulerError {
    let server = pg_server(pool);
    let what = format!("job queue: {what}");
    let err = match pg_failure(e) {
        PgFailure::Unreachable => KonnectorError::store(format!(
            "{what} failed: the PostgreSQL server {server} cannot be reached ({e}); nothing of this operation was written: check that the server runs and that this machine may connect"
        )),
        PgFailure::DiskFull => KonnectorError::disk_full(format!(
            "{what} failed: the disk of the PostgreSQL server {server} is full ({e}); nothing of this operation was written"
        )),
        PgFailure::Permission => KonnectorError::store(format!(
            "{what} failed: the PostgreSQL role may not do this on {server} ({e}); check its grants"
        )),
        PgFailure::Conflict => KonnectorError::store(format!(
            "{what} failed: it kept conflicting with other workers on {server} ({e}); try again"
        )),
        PgFailure::Other => KonnectorError::store(format!("{what} failed on {server}: {e}")),
    };
    SchedulerError::Store(err)
}

/// The scheduler's result type.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;
