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
            | SchedulerError::NotFound(_) => None,
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

/// The scheduler's result type.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;
