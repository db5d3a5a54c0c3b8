//! The queue's records, the same for every backend: what a [`JobQueue`]
//! reads and writes.
//!
//! [`JobQueue`]: super::JobQueue

use chrono::{DateTime, Utc};
use gleaner_framework::ErrorCode;
use gleaner_framework::tenant::TenantId;
use serde::{Deserialize, Serialize};

use super::JobCode;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker runs it.
    Running,
    /// The run waits for a second-factor code (`gleaner 2fa`).
    AwaitingUser,
    /// The run committed.
    Done,
    /// The run failed (its error code and message are recorded).
    Errored,
    /// An automatic run that was not started (its reason is recorded).
    Skipped,
}

impl JobState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::AwaitingUser => "awaiting_user",
            Self::Done => "done",
            Self::Errored => "errored",
            Self::Skipped => "skipped",
        }
    }

    /// The state stored as `s` (an unknown text reads as `Errored`).
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "awaiting_user" => Self::AwaitingUser,
            "done" => Self::Done,
            "skipped" => Self::Skipped,
            _ => Self::Errored,
        }
    }
}

/// Why a job exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// The account's automatic slot.
    Slot,
    /// The account's cron override.
    Cron,
    /// A slot or cron time missed while no daemon ran, run once on start.
    CatchUp,
    /// A person asked (`gleaner run`).
    Manual,
    /// A retry after a transient error.
    Retry,
}

impl TriggerKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slot => "slot",
            Self::Cron => "cron",
            Self::CatchUp => "catch-up",
            Self::Manual => "manual",
            Self::Retry => "retry",
        }
    }

    /// The kind stored as `s` (an unknown text reads as `Slot`).
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "cron" => Self::Cron,
            "catch-up" => Self::CatchUp,
            "manual" => Self::Manual,
            "retry" => Self::Retry,
            _ => Self::Slot,
        }
    }
}

/// A job record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its number.
    pub id: i64,
    /// The tenant whose account it runs (SQLite: always the default
    /// tenant). The scheduler runs it with that tenant's store and vault.
    #[serde(with = "tenant_name")]
    pub tenant: TenantId,
    /// The account.
    pub account_id: String,
    /// The konnector slug.
    pub konnector: String,
    /// Why it exists.
    pub trigger: TriggerKind,
    /// Whether a person asked for it (directly or as a retry of such a run).
    pub manual: bool,
    /// 1 for the first execution, 2 for the first retry, ...
    pub attempt: u32,
    /// Its state.
    pub state: JobState,
    /// The run id passed to the konnector run.
    pub run_id: String,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// Not started before this time (retries).
    pub not_before: DateTime<Utc>,
    /// When a worker started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker holding it.
    pub lease_owner: Option<String>,
    /// How many times it was taken back from a dead worker.
    pub recoveries: u32,
    /// The error code (errored) or skip reason code (skipped).
    pub error_code: Option<JobCode>,
    /// The error message or skip reason, secrets masked.
    pub error_message: Option<String>,
    /// The run report (done), as JSON.
    pub report: Option<serde_json::Value>,
    /// What the run waits for (awaiting_user).
    pub twofa_kind: Option<String>,
    /// Where the code went (awaiting_user).
    pub twofa_hint: Option<String>,
}

/// An account's trigger and its current state (Cozy's `current_state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    /// The tenant of the account (SQLite: always the default tenant); the
    /// jobs planned from this trigger belong to it.
    #[serde(with = "tenant_name")]
    pub tenant: TenantId,
    /// The account.
    pub account_id: String,
    /// The konnector slug.
    pub konnector: String,
    /// The person's cron override, if any.
    pub cron: Option<String>,
    /// The next automatic run.
    pub next_run_at: DateTime<Utc>,
    /// `new`, `done` or `errored`: the last run's outcome.
    pub status: String,
    /// When a run last ended.
    pub last_execution: Option<DateTime<Utc>>,
    /// When a run last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// When a run last failed.
    pub last_failure: Option<DateTime<Utc>>,
    /// When a manual run last ended.
    pub last_manual_execution: Option<DateTime<Utc>>,
    /// The last error's code (a konnector's, or text this build does not
    /// know).
    pub last_error_code: Option<JobCode>,
    /// The last error's message.
    pub last_error_message: Option<String>,
    /// Set after an error that needs the person: automatic runs are skipped
    /// until a manual run succeeds or the credentials change. The blocking
    /// error's code.
    pub blocked_code: Option<JobCode>,
    /// Paused by the person ([`JobQueue::set_paused`](super::JobQueue::set_paused)):
    /// no automatic run is queued, nor a skip recorded, until resumed.
    /// Manual runs still work.
    pub paused: bool,
}

/// How a job ended, as the worker reports it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The run committed; its report.
    Done(serde_json::Value),
    /// The run failed.
    Failed {
        /// The run's Cozy code.
        code: ErrorCode,
        /// The message, secrets masked.
        message: String,
        /// What the scheduler does next.
        next: crate::retry::AfterFailure,
    },
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this account's.
    pub account_id: Option<String>,
    /// Only errored ones.
    pub failed: bool,
    /// Only jobs in these states.
    pub states: Vec<JobState>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// What [`JobQueue::recover`](super::JobQueue::recover) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs whose run had committed before their worker died: now done.
    pub completed: Vec<i64>,
    /// Jobs queued again.
    pub requeued: Vec<i64>,
}

/// A worker of the fleet as the queue knows it: its last heartbeat
/// ([`JobQueue::worker_beat`](super::JobQueue::worker_beat)) and the jobs
/// leased to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerState {
    /// Its name on leases (`role@host:pid:nonce`, [`crate::owner`]).
    pub worker_id: String,
    /// The host it runs on.
    pub host: String,
    /// Its first beat.
    pub started_at: DateTime<Utc>,
    /// Its last beat: a worker silent for longer than a lease is gone.
    pub last_beat: DateTime<Utc>,
    /// How many runs it said it had in flight at its last beat.
    pub in_flight: u32,
    /// How many `running` or `awaiting_user` jobs are leased to it now,
    /// counted from the jobs themselves.
    pub leased: u32,
}

/// One konnector's jobs waiting and running
/// ([`JobQueue::depth_by_konnector`](super::JobQueue::depth_by_konnector)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Queued jobs that may start now (`not_before` past).
    pub due: u64,
    /// Queued jobs that wait for a later time (retries).
    pub later: u64,
    /// `running` and `awaiting_user` jobs.
    pub active: u64,
}

/// A [`TenantId`] as its name in JSON (a name read back is checked again).
mod tenant_name {
    use gleaner_framework::tenant::TenantId;
    use serde::{Deserialize as _, Deserializer, Serializer};

    /// Writes the tenant's name.
    pub fn serialize<S: Serializer>(t: &TenantId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    /// Reads a tenant's name, refusing an invalid one.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TenantId, D::Error> {
        let name = String::deserialize(d)?;
        TenantId::parse(&name).map_err(serde::de::Error::custom)
    }
}
