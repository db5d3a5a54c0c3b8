//! The scheduler: triggers, the durable job queue, workers and the daemon.
//!
//! This crate is a skeleton. The scheduler issue fills it: one trigger per
//! account with a stable pseudo-random slot, a job queue in the store's
//! database (SQLite, or PostgreSQL past one machine), workers with global
//! and per-provider limits, leases with heartbeats, and retries decided by
//! [`gleaner_framework::ErrorCode::is_retryable`] and
//! [`gleaner_framework::ErrorCode::needs_user`].
//!
//! Architecture invariant: the scheduler knows no provider; it runs
//! whatever the registry hands it through
//! [`gleaner_framework::run_konnector`].

#![deny(missing_docs)]

/// The default time limit of a run when the manifest sets none, in seconds
/// (Cozy's worker default).
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 300;
