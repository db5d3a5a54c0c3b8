//! The scheduler: nightly imports for every enabled account, with no run
//! lost or doubled.
//!
//! - [`plan`]: when each account runs: a stable per-account slot inside its
//!   konnector's window, or a person's 5-field cron expression;
//! - [`queue`]: the durable job queue and triggers' state: the [`JobQueue`]
//!   trait (what a backend must guarantee) and [`Queue`], its
//!   implementation in the store's SQLite file, with leases, and the
//!   database invariants that keep one run per account and the
//!   per-provider limits across processes; [`PgQueue`], the same queue in
//!   PostgreSQL for a fleet of machines (advisory locks per konnector,
//!   `SKIP LOCKED` claims, `LISTEN`/`NOTIFY` wake-ups), with a worker
//!   registry ([`WorkerState`]); codes typed as [`JobCode`];
//! - [`retry`]: what follows a failure, by error code;
//! - [`scheduler`]: the [`Scheduler`] that executes jobs and drives the
//!   daemon loop (limits, heartbeats, graceful shutdown, catch-up);
//! - [`twofa`]: the `awaiting_user` channel answered by `gleaner 2fa`;
//! - [`clock`]: the time source, injectable so tests never sleep;
//! - [`config`]: the installation's settings (`gleaner.toml`).
//!
//! Architecture invariant: the scheduler knows no provider. It gets
//! konnectors through [`KonnectorSource`].

#![deny(missing_docs)]

pub mod clock;
pub mod config;
pub mod error;
pub mod owner;
pub mod plan;
pub mod queue;
pub mod retry;
pub mod scheduler;
pub mod twofa;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{DatabaseConfig, SchedulerConfig};
pub use error::{Result, SchedulerError};
pub use queue::{
    Job, JobCode, JobFilter, JobQueue, JobState, Outcome, PgQueue, Queue, QueueDepth, TriggerKind,
    TriggerState, WorkerState,
};
pub use scheduler::{
    Attended, DaemonSummary, Executed, JobProgressFn, KonnectorSource, Scheduler, TenantScope,
    TenantScopes,
};

/// The default per-job time limit, in seconds, when a manifest sets none
/// (the manifest's `timeout_secs` defaults to it).
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 300;

/// A short random suffix for run ids and worker names.
pub(crate) fn new_run_suffix() -> String {
    gleaner_framework::ids::new_id()
}
