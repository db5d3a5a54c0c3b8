//! [`JobQueue`]: what the scheduler and the CLI need from a queue, and the
//! guarantees a backend must give; its implementation for the SQLite
//! [`Queue`] (PostgreSQL's, [`super::PgQueue`], is in `postgres/`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{
    Job, JobFilter, LimitFor, NextRun, Outcome, Queue, QueueDepth, Recovered, TriggerState,
    WorkerState,
};
use crate::error::Result;

/// The durable job queue and the triggers' state, behind one interface so
/// that a queue shared by several machines (PostgreSQL) can stand beside
/// the single machine's ([`Queue`], SQLite).
///
/// **Every guarantee below must hold across processes and machines**: it
/// is a transaction or a constraint of the database, never state in the
/// memory of one process. Two workers on one queue never run one account
/// twice at once, never exceed a konnector's limit together, and never
/// take the same job.
///
/// The queue lives in the same database as the account store and the
/// documents (`accounts`, `konnector_state`): planning reads the accounts,
/// and recovery reads the run id a run commits with its documents.
///
/// Records carry times of the queue's clock ([`JobQueue::now`]); codes are
/// stored as their text ([`crate::queue::JobCode::as_str`]) and read back
/// with [`crate::queue::JobCode::parse`], so text the build does not know
/// survives.
///
/// Errors are [`crate::SchedulerError`]s: the database's failures as
/// `Store` (classified: a full disk, a permission), refusals as their own
/// variants (`Busy`, `NoQuestion`, `NotFound`).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// The clock the queue reads: every time it records, and "now" for due
    /// triggers, leases and retries.
    fn now(&self) -> DateTime<Utc>;

    // ---- triggers ----------------------------------------------------

    /// Every trigger, ordered by account id.
    async fn triggers(&self) -> Result<Vec<TriggerState>>;

    /// One account's trigger, `None` when it has none yet.
    async fn trigger(&self, account_id: &str) -> Result<Option<TriggerState>>;

    /// The accounts of the store that have no trigger yet, as
    /// `(account, konnector)`, found by the database (no listing of every
    /// account: it is called every sync, with 100,000 accounts).
    async fn accounts_without_trigger(&self) -> Result<Vec<(String, String)>>;

    /// Creates triggers from `(account, konnector, first run)`, in one
    /// transaction. An account that already has one keeps it untouched
    /// (its state, cron and next run): two processes adding the same
    /// account at once leave one trigger.
    async fn add_triggers(&self, rows: &[(String, String, DateTime<Utc>)]) -> Result<()>;

    /// Deletes, in one transaction, the triggers and the **queued** jobs of
    /// accounts no longer in the store (running jobs end on their own, and
    /// history stays). Returns how many triggers went.
    async fn drop_orphan_triggers(&self) -> Result<u64>;

    /// Sets (`Some`) or clears (`None`) an account's cron override and its
    /// next run. [`crate::SchedulerError::NotFound`] when the account has
    /// no trigger yet.
    async fn set_cron(
        &self,
        account_id: &str,
        cron: Option<&str>,
        next_run_at: DateTime<Utc>,
    ) -> Result<()>;

    /// Pauses (or resumes) an account's automatic runs: while paused,
    /// [`JobQueue::enqueue_due`] moves its trigger on without a job nor a
    /// skip record; manual runs still work.
    /// [`crate::SchedulerError::NotFound`] when the account has no trigger
    /// yet.
    async fn set_paused(&self, account_id: &str, paused: bool) -> Result<()>;

    /// Lifts an account's block (its `blocked_code`) after its credentials
    /// changed. Nothing happens for an account without a trigger.
    async fn credentials_changed(&self, account_id: &str) -> Result<()>;

    /// Plans, in **one transaction** (so two daemons do not both queue a
    /// night): for each trigger due at [`JobQueue::now`], oldest first (at
    /// most 5,000 per call; the next call takes the rest),
    /// queues one automatic job (`slot` or `cron`; `catch-up` when the
    /// trigger was missed by more than `catch_up_after`), or records a
    /// `skipped` job with its [`crate::queue::JobCode`] (the account is
    /// blocked: `SKIPPED.NEEDS_USER`; it has a queued or active job:
    /// `SKIPPED.ALREADY_ACTIVE`), or, for a paused account, nothing. Every
    /// due trigger then moves to `next(trigger, now)` (a day later when
    /// `None`): one catch-up run, not one per missed night. Returns the
    /// jobs queued.
    async fn enqueue_due(&self, next: &NextRun<'_>, catch_up_after: Duration) -> Result<Vec<i64>>;

    // ---- jobs --------------------------------------------------------

    /// Queues a manual run of an account, due now, in one transaction: the
    /// account's queued job becomes manual and due now if it has one
    /// (there is at most one queued job per account, a constraint), else a
    /// new job is queued. Returns the job's id.
    async fn enqueue_manual(&self, account_id: &str, konnector: &str) -> Result<i64>;

    /// Starts a manual run at once for `owner`, holding a lease of `lease`:
    /// first recovers dead workers' jobs ([`JobQueue::recover`]), then, in
    /// **one transaction**, refuses with [`crate::SchedulerError::Busy`]
    /// while the account has a `running` or `awaiting_user` job (and then
    /// writes nothing: no job is left for a daemon), else queues as
    /// [`JobQueue::enqueue_manual`] does and claims that job. Returns the
    /// claimed job.
    async fn start_manual(
        &self,
        account_id: &str,
        konnector: &str,
        owner: &str,
        lease: StdDuration,
    ) -> Result<Job>;

    /// Claims up to `max` runnable jobs for `owner`, each with a lease of
    /// `lease`, in **one transaction**: queued, due (`not_before` past),
    /// manual ones first then oldest; never a job whose account has a
    /// `running` or `awaiting_user` job (**one active job per account**,
    /// which the database also enforces); and never more running or
    /// waiting jobs of a konnector, counted across every worker inside the
    /// claiming transaction, than `limit_for(konnector)`. Two workers never
    /// claim the same job. `max == 0` claims nothing.
    async fn claim_batch(
        &self,
        owner: &str,
        lease: StdDuration,
        limit_for: &LimitFor<'_>,
        max: usize,
    ) -> Result<Vec<Job>>;

    /// Claims one job: [`JobQueue::claim_batch`] with `max` 1.
    async fn claim(
        &self,
        owner: &str,
        lease: StdDuration,
        limit_for: &LimitFor<'_>,
    ) -> Result<Option<Job>> {
        Ok(self.claim_batch(owner, lease, limit_for, 1).await?.pop())
    }

    /// Records how `job` ended, in **one transaction**: the job becomes
    /// `done` or `errored` (with its code and message) and loses its lease
    /// and any given code; its trigger's state follows (a success clears
    /// the last error and the block; a failure records them, and blocks
    /// the account when `next` is `BlockAccount`); a `Retry` queues the
    /// next attempt (unless the account already has a queued job). Only
    /// while `owner` still holds the job: otherwise (its lease ran out and
    /// it was recovered) nothing changes and it returns `Ok(None)`.
    /// Returns the retry's job id.
    async fn finish(&self, job: &Job, owner: &str, outcome: &Outcome) -> Result<Option<i64>>;

    /// One job, `None` when there is none with this id (or it was pruned).
    async fn job(&self, id: i64) -> Result<Option<Job>>;

    /// Jobs matching `filter`, newest first (by id), at most `filter.limit`
    /// (50 when 0).
    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;

    /// How many jobs are in each state, keyed by [`crate::JobState::as_str`].
    async fn counts(&self) -> Result<HashMap<String, u64>>;

    /// Deletes the finished (`done`, `errored`, `skipped`) jobs that ended
    /// more than `retention` ago, and forgets the workers silent for as
    /// long (their process is gone without saying so). Returns how many
    /// jobs.
    async fn prune(&self, retention: Duration) -> Result<u64>;

    // ---- leases --------------------------------------------------------

    /// Renews the lease of job `id` to `lease` from now, only while `owner`
    /// holds it and it is `running` or `awaiting_user`. `false` when it no
    /// longer does: the worker must stop the run.
    async fn heartbeat(&self, id: i64, owner: &str, lease: StdDuration) -> Result<bool>;

    /// Puts `owner`'s `running` and `awaiting_user` jobs back in the queue
    /// (a stopping daemon whose grace period ran out). Returns their ids.
    async fn requeue_owned(&self, owner: &str) -> Result<Vec<i64>>;

    /// Takes back, in **one transaction**, the active jobs whose lease ran
    /// out or whose worker process is known dead ([`crate::owner`]): a job
    /// whose run id the account's konnector state names (the run committed
    /// with its documents before the worker died) is marked `done` and its
    /// trigger succeeds; any other is queued again (its `recoveries`
    /// counted), or, when the account already has a queued job, ends
    /// `errored` as replaced. Nothing runs twice; nothing stays `running`.
    async fn recover(&self) -> Result<Recovered>;

    // ---- second factor -------------------------------------------------

    /// Marks active job `id` as `awaiting_user` for a code of `kind` (sent
    /// to `hint`) until `deadline`. No change to a job that is not active.
    async fn set_awaiting(
        &self,
        id: i64,
        kind: &str,
        hint: Option<&str>,
        deadline: DateTime<Utc>,
    ) -> Result<()>;

    /// Marks job `id` `running` again (its question was answered or timed
    /// out), clearing what it waited for. Only from `awaiting_user`.
    async fn set_running(&self, id: i64) -> Result<()>;

    /// Records a sealed code for the account's job that waits in
    /// `awaiting_user` (replacing a code given before and not yet taken).
    /// Returns that job's id; [`crate::SchedulerError::NoQuestion`] when
    /// none waits.
    async fn give_answer(&self, account_id: &str, sealed: &[u8]) -> Result<i64>;

    /// Takes the sealed code given for job `id`, deleting it (a code is
    /// taken once), `None` when none was given.
    async fn take_answer(&self, id: i64) -> Result<Option<Vec<u8>>>;

    // ---- wake-ups and workers ------------------------------------------

    /// Waits until there may be work (a job was queued, or a run ended and
    /// freed a slot), at most `max`; the daemon waits here between two
    /// rounds. Never fails: a backend that cannot listen sleeps `max`. The
    /// default sleeps `max` (SQLite: one machine, polled); PostgreSQL
    /// returns early on a notification from any machine.
    async fn wait_for_work(&self, max: StdDuration) {
        tokio::time::sleep(max).await;
    }

    /// Records a heartbeat of worker `worker_id` (a daemon, named as on
    /// its leases) with `in_flight` runs: its first beat records when it
    /// started and this host's name; every beat sets its last beat to
    /// [`JobQueue::now`]. A daemon beats every third of its lease.
    async fn worker_beat(&self, worker_id: &str, in_flight: u32) -> Result<()>;

    /// Forgets worker `worker_id` (it stopped cleanly). Nothing happens for
    /// a worker the queue does not know.
    async fn worker_gone(&self, worker_id: &str) -> Result<()>;

    /// Every worker that beat and did not stop cleanly (nor was pruned with
    /// the history: [`JobQueue::prune`] forgets workers silent for longer
    /// than the retention), by worker id, with the jobs leased to each.
    async fn workers(&self) -> Result<Vec<WorkerState>>;

    /// The queued (due now, or later) and active jobs of each konnector
    /// that has any, by slug.
    async fn depth_by_konnector(&self) -> Result<BTreeMap<String, QueueDepth>>;
}

/// The SQLite queue: each method is the inherent one of the same name.
#[async_trait]
impl JobQueue for Queue {
    fn now(&self) -> DateTime<Utc> {
        Queue::now(self)
    }

    async fn triggers(&self) -> Result<Vec<TriggerState>> {
        Queue::triggers(self).await
    }

    async fn trigger(&self, account_id: &str) -> Result<Option<TriggerState>> {
        Queue::trigger(self, account_id).await
    }

    async fn accounts_without_trigger(&self) -> Result<Vec<(String, String)>> {
        Queue::accounts_without_trigger(self).await
    }

    async fn add_triggers(&self, rows: &[(String, String, DateTime<Utc>)]) -> Result<()> {
        Queue::add_triggers(self, rows).await
    }

    async fn drop_orphan_triggers(&self) -> Result<u64> {
        Queue::drop_orphan_triggers(self).await
    }

    async fn set_cron(
        &self,
        account_id: &str,
        cron: Option<&str>,
        next_run_at: DateTime<Utc>,
    ) -> Result<()> {
        Queue::set_cron(self, account_id, cron, next_run_at).await
    }

    async fn set_paused(&self, account_id: &str, paused: bool) -> Result<()> {
        Queue::set_paused(self, account_id, paused).await
    }

    async fn credentials_changed(&self, account_id: &str) -> Result<()> {
        Queue::credentials_changed(self, account_id).await
    }

    async fn enqueue_due(&self, next: &NextRun<'_>, catch_up_after: Duration) -> Result<Vec<i64>> {
        Queue::enqueue_due(self, next, catch_up_after).await
    }

    async fn enqueue_manual(&self, account_id: &str, konnector: &str) -> Result<i64> {
        Queue::enqueue_manual(self, account_id, konnector).await
    }

    async fn start_manual(
        &self,
        account_id: &str,
        konnector: &str,
        owner: &str,
        lease: StdDuration,
    ) -> Result<Job> {
        Queue::start_manual(self, account_id, konnector, owner, lease).await
    }

    async fn claim_batch(
        &self,
        owner: &str,
        lease: StdDuration,
        limit_for: &LimitFor<'_>,
        max: usize,
    ) -> Result<Vec<Job>> {
        Queue::claim_batch(self, owner, lease, limit_for, max).await
    }

    async fn finish(&self, job: &Job, owner: &str, outcome: &Outcome) -> Result<Option<i64>> {
        Queue::finish(self, job, owner, outcome).await
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        Queue::job(self, id).await
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        Queue::jobs(self, filter).await
    }

    async fn counts(&self) -> Result<HashMap<String, u64>> {
        Queue::counts(self).await
    }

    async fn prune(&self, retention: Duration) -> Result<u64> {
        Queue::prune(self, retention).await
    }

    async fn heartbeat(&self, id: i64, owner: &str, lease: StdDuration) -> Result<bool> {
        Queue::heartbeat(self, id, owner, lease).await
    }

    async fn requeue_owned(&self, owner: &str) -> Result<Vec<i64>> {
        Queue::requeue_owned(self, owner).await
    }

    async fn recover(&self) -> Result<Recovered> {
        Queue::recover(self).await
    }

    async fn set_awaiting(
        &self,
        id: i64,
        kind: &str,
        hint: Option<&str>,
        deadline: DateTime<Utc>,
    ) -> Result<()> {
        Queue::set_awaiting(self, id, kind, hint, deadline).await
    }

    async fn set_running(&self, id: i64) -> Result<()> {
        Queue::set_running(self, id).await
    }

    async fn give_answer(&self, account_id: &str, sealed: &[u8]) -> Result<i64> {
        Queue::give_answer(self, account_id, sealed).await
    }

    async fn take_answer(&self, id: i64) -> Result<Option<Vec<u8>>> {
        Queue::take_answer(self, id).await
    }

    async fn worker_beat(&self, worker_id: &str, in_flight: u32) -> Result<()> {
        Queue::worker_beat(self, worker_id, in_flight).await
    }

    async fn worker_gone(&self, worker_id: &str) -> Result<()> {
        Queue::worker_gone(self, worker_id).await
    }

    async fn workers(&self) -> Result<Vec<WorkerState>> {
        Queue::workers(self).await
    }

    async fn depth_by_konnector(&self) -> Result<BTreeMap<String, QueueDepth>> {
        Queue::depth_by_konnector(self).await
    }
}
