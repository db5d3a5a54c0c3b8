//! [`Scheduler`]: plans triggers, runs jobs, and drives the daemon loop.
//!
//! One value holds everything a worker needs (queue, run environment,
//! accounts, vault, konnectors, settings). The daemon ([`Scheduler::run_daemon`])
//! and a one-off `gleaner run` both execute jobs through
//! [`Scheduler::execute`], so a manual run from a terminal is recorded,
//! leased and retried like a nightly one.
//!
//! **Tenants**: the scheduler's own fields (`env`, `accounts`, `vault`,
//! `oauth`, `sessions`) are one tenant's, [`Scheduler::tenant`]. A job of
//! another tenant (a fleet daemon claims every tenant's jobs) runs with
//! that tenant's store, files and vault, which [`Scheduler::tenants`]
//! resolves ([`TenantScopes`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gleaner_framework::oauth::TokenManager;
use gleaner_framework::session::Sessions;
use gleaner_framework::store::{Account, AccountStore};
use gleaner_framework::tenant::TenantId;
use gleaner_framework::vault::Vault;
use gleaner_framework::{
    ErrorCode, Konnector, KonnectorError, ProgressFn, RunEnv, RunOptions, RunReport,
    TwoFactorChannel, redact, run_konnector,
};
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::SchedulerConfig;
use crate::error::{Result, SchedulerError};
use crate::plan::Schedule;
use crate::queue::{Job, JobQueue, Outcome, TriggerState};
use crate::retry::{AfterFailure, after_error};
use crate::twofa::QueueTwoFactor;

/// Where the scheduler finds konnectors (the binary passes its registry;
/// the scheduler knows no provider).
pub trait KonnectorSource: Send + Sync {
    /// The konnector with this slug.
    fn konnector(&self, slug: &str) -> Option<Arc<dyn Konnector>>;
}

impl<F> KonnectorSource for F
where
    F: Fn(&str) -> Option<Arc<dyn Konnector>> + Send + Sync,
{
    fn konnector(&self, slug: &str) -> Option<Arc<dyn Konnector>> {
        self(slug)
    }
}

/// What a run needs from one tenant's data: its store, files, vault.
pub struct TenantScope {
    /// What runs of this tenant share (its files' folders among them).
    pub env: RunEnv,
    /// The tenant's accounts.
    pub accounts: Arc<dyn AccountStore>,
    /// The vault that opens the tenant's credentials and seals its
    /// second-factor codes.
    pub vault: Arc<Vault>,
    /// The tenant's OAuth tokens, for konnectors that use OAuth.
    pub oauth: Option<Arc<TokenManager>>,
    /// Where the tenant's runs keep login sessions (`None`: sessions off).
    pub sessions: Option<Sessions>,
}

/// Resolves a tenant's [`TenantScope`] (the binary opens the tenant's
/// store view, folders and vault; it may cache them).
#[async_trait::async_trait]
pub trait TenantScopes: Send + Sync {
    /// The scope of `tenant`; an error (an unknown tenant, a vault that
    /// cannot open) fails the run that needed it.
    async fn scope(
        &self,
        tenant: &TenantId,
    ) -> std::result::Result<Arc<TenantScope>, KonnectorError>;
}

/// How a job ended, for the caller.
pub struct Executed {
    /// The job as it was claimed.
    pub job: Job,
    /// The run's report or error.
    pub result: std::result::Result<RunReport, KonnectorError>,
    /// What the scheduler decided after a failure.
    pub after: Option<AfterFailure>,
    /// The retry's job id, when one was queued.
    pub retry: Option<i64>,
}

/// What a daemon did, for its last log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonSummary {
    /// Jobs it ran to the end.
    pub finished: u64,
    /// Jobs it put back in the queue at shutdown.
    pub requeued: Vec<i64>,
}

/// What a person watching a run provides (`gleaner run` in a terminal).
#[derive(Default)]
pub struct Attended {
    /// The prompt for second factors; `None`: the job waits in
    /// `awaiting_user` for `gleaner 2fa`.
    pub two_factor: Option<Arc<dyn TwoFactorChannel>>,
    /// The progress bar.
    pub progress: Option<ProgressFn>,
    /// Record the run to a cassette (`gleaner run --record`).
    pub cassette: Option<gleaner_framework::CassetteMode>,
}

/// Receives the progress of jobs that no person watches (the daemon's): the
/// job id and the run's progress. A web page or a status line subscribes
/// through it; it must return quickly (it is called from the run).
pub type JobProgressFn = Arc<dyn Fn(i64, &gleaner_framework::Progress) + Send + Sync>;

/// The scheduler of one installation.
pub struct Scheduler {
    /// The job queue: any backend ([`crate::Queue`] is SQLite's).
    pub queue: Arc<dyn JobQueue>,
    /// What runs share.
    pub env: RunEnv,
    /// The accounts.
    pub accounts: Arc<dyn AccountStore>,
    /// The vault that opens credentials; `None` for a scheduler that only
    /// reads and plans (status, history, triggers), which must work even
    /// when the vault's key is lost. Executing a job needs it.
    pub vault: Option<Arc<Vault>>,
    /// The konnectors.
    pub konnectors: Arc<dyn KonnectorSource>,
    /// The settings.
    pub config: SchedulerConfig,
    /// This process's name on leases.
    pub owner: String,
    /// OAuth tokens, for konnectors that use OAuth (one manager per process:
    /// it serializes refreshes).
    pub oauth: Option<Arc<TokenManager>>,
    /// Where runs keep login sessions between runs (`None`: sessions off).
    pub sessions: Option<Sessions>,
    /// The progress hook of jobs run without an attended progress callback
    /// (the daemon's); `None`: their progress goes nowhere.
    pub progress: Option<JobProgressFn>,
    /// The tenant that `env`, `accounts`, `vault`, `oauth` and `sessions`
    /// belong to (the default tenant on SQLite): its jobs run with them.
    pub tenant: TenantId,
    /// Resolves the scope of other tenants' jobs (a fleet daemon's);
    /// `None`: a job of another tenant fails with a store error naming it.
    pub tenants: Option<Arc<dyn TenantScopes>>,
}

impl Scheduler {
    /// A worker name unique to this process (see [`crate::owner`]).
    pub fn new_owner(role: &str) -> String {
        crate::owner::new(role)
    }

    /// The schedule of a trigger: its cron override, or the automatic slot
    /// from its konnector's manifest and the installation's window.
    pub fn schedule_of(
        &self,
        account_id: &str,
        konnector: &str,
        cron: Option<&str>,
    ) -> Option<Schedule> {
        if let Some(expr) = cron {
            return Schedule::cron(expr).ok();
        }
        let k = self.konnectors.konnector(konnector)?;
        let m = k.manifest();
        Some(Schedule::auto(
            account_id,
            m.frequency,
            self.config.window.unwrap_or(m.time_interval),
        ))
    }

    /// The next run of a trigger after `after`.
    pub fn next_run(&self, t: &TriggerState, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule_of(&t.account_id, &t.konnector, t.cron.as_deref())?
            .next_after(after, self.config.timezone)
    }

    /// Creates triggers for new accounts and drops those of removed ones.
    pub async fn sync_triggers(&self) -> Result<()> {
        let now = self.queue.now();
        let rows: Vec<(String, String, DateTime<Utc>)> = self
            .queue
            .accounts_without_trigger()
            .await?
            .into_iter()
            .map(|(id, konnector)| {
                let first = self
                    .schedule_of(&id, &konnector, None)
                    .and_then(|s| s.next_after(now, self.config.timezone))
                    .unwrap_or(now + chrono::Duration::days(1));
                (id, konnector, first)
            })
            .collect();
        self.queue.add_triggers(&rows).await?;
        self.queue.drop_orphan_triggers().await?;
        Ok(())
    }

    /// Sets (or with `None` removes) an account's cron override.
    pub async fn set_cron(&self, account: &Account, cron: Option<&str>) -> Result<DateTime<Utc>> {
        self.sync_triggers().await?;
        let schedule = match cron {
            Some(expr) => Schedule::cron(expr)?,
            None => self
                .schedule_of(&account.id, &account.konnector, None)
                .ok_or_else(|| {
                    SchedulerError::NotFound(format!("no konnector `{}`", account.konnector))
                })?,
        };
        let next = schedule
            .next_after(self.queue.now(), self.config.timezone)
            .ok_or_else(|| SchedulerError::Config("the schedule never runs".into()))?;
        self.queue
            .set_cron(&account.id, cron.map(str::trim), next)
            .await?;
        Ok(next)
    }

    /// Takes back dead workers' jobs and queues due triggers.
    pub async fn tick(&self) -> Result<Vec<i64>> {
        self.queue.recover().await?;
        let catch_up_after =
            crate::queue::to_chrono(self.config.poll * 2) + chrono::Duration::seconds(60);
        self.queue
            .enqueue_due(&|t, now| self.next_run(t, now), catch_up_after)
            .await
    }

    /// Claims the next runnable job for this worker.
    pub async fn claim(&self) -> Result<Option<Job>> {
        let config = &self.config;
        self.queue
            .claim(&self.owner, config.lease, &|k| config.limit_for(k))
            .await
    }

    /// Runs a claimed job to its end and records the outcome: the run
    /// itself (with lease renewal), then [`JobQueue::finish`] with the retry
    /// policy's decision.
    pub async fn execute(&self, job: Job, attended: Option<Attended>) -> Executed {
        let span = tracing::info_span!(
            "job",
            job = job.id,
            tenant = %job.tenant,
            account = %job.account_id,
            konnector = %job.konnector,
            attempt = job.attempt,
            trigger = job.trigger.as_str()
        );
        async move {
            let result = self.run_job(&job, attended).await;
            let (outcome, after) = match &result {
                Ok(report) => (
                    Outcome::Done(serde_json::to_value(report).unwrap_or_default()),
                    None,
                ),
                Err(e) => {
                    let jitter: f64 = rand::rng().random();
                    let next = after_error(e, job.attempt, &self.config, jitter);
                    (
                        Outcome::Failed {
                            code: e.code,
                            message: redact::scrub(&e.message).into_owned(),
                            next,
                        },
                        Some(next),
                    )
                }
            };
            let retry = match self.queue.finish(&job, &self.owner, &outcome).await {
                Ok(r) => r,
                Err(e) => {
                    // The lease runs out and recovery decides from the
                    // account's state whether the run committed.
                    tracing::error!(error = %e, "cannot record the job's outcome");
                    None
                }
            };
            match &result {
                Ok(r) => tracing::info!(created = r.created(), "job done"),
                Err(e) => tracing::warn!(code = %e.code, ?after, retry, "job errored"),
            }
            Executed {
                job,
                result,
                after,
                retry,
            }
        }
        .instrument(span)
        .await
    }

    /// The scope of another tenant's job: `None` for a job of
    /// [`Scheduler::tenant`] (the scheduler's own fields serve it).
    async fn scope_of(
        &self,
        job: &Job,
    ) -> std::result::Result<Option<Arc<TenantScope>>, KonnectorError> {
        if job.tenant == self.tenant {
            return Ok(None);
        }
        let tenants = self.tenants.as_ref().ok_or_else(|| {
            KonnectorError::store(format!(
                "job #{} belongs to tenant {}, but this scheduler serves only tenant {} and cannot open another tenant's store",
                job.id, job.tenant, self.tenant
            ))
        })?;
        tenants.scope(&job.tenant).await.map(Some)
    }

    async fn run_job(
        &self,
        job: &Job,
        attended: Option<Attended>,
    ) -> std::result::Result<RunReport, KonnectorError> {
        // Everything of the job's tenant comes from one scope: its
        // accounts, its vault (which also seals the codes `gleaner 2fa`
        // gives), its tokens, sessions and files.
        let scope = self.scope_of(job).await?;
        let (accounts, env, oauth, sessions) = match &scope {
            Some(s) => (&s.accounts, &s.env, &s.oauth, &s.sessions),
            None => (&self.accounts, &self.env, &self.oauth, &self.sessions),
        };
        let account = accounts
            .get_account(&job.account_id)
            .await?
            .ok_or_else(|| {
                KonnectorError::new(
                    ErrorCode::UserActionNeededAccountRemoved,
                    format!("account {} was removed", job.account_id),
                )
            })?;
        let konnector = self.konnectors.konnector(&job.konnector).ok_or_else(|| {
            KonnectorError::new(
                ErrorCode::KonnectorNotFound,
                format!("no konnector `{}` in this build", job.konnector),
            )
        })?;
        let vault = match &scope {
            Some(s) => &s.vault,
            None => self.vault.as_ref().ok_or_else(|| {
                KonnectorError::vault(
                    "this scheduler was opened without the vault; it cannot run jobs",
                )
            })?,
        };
        // A vault that cannot open the credentials (a wrong or missing key,
        // a damaged record) is `UNKNOWN_ERROR.VAULT_FAILED` with the vault
        // as its source: never `LOGIN_FAILED.NEEDS_SECRET`, and the retry
        // policy reads the source before the code, so the account is not
        // paused as if the person had to act.
        let secrets = vault.open(&account.id, &account.sealed_secrets)?;
        let attended = attended.unwrap_or_default();
        let progress = attended.progress.or_else(|| {
            self.progress.as_ref().map(|hook| {
                let hook = Arc::clone(hook);
                let id = job.id;
                Arc::new(move |p: &gleaner_framework::Progress| hook(id, p)) as ProgressFn
            })
        });
        let two_factor: Arc<dyn TwoFactorChannel> = match attended.two_factor {
            Some(channel) => channel,
            None => Arc::new(QueueTwoFactor {
                queue: Arc::clone(&self.queue),
                job_id: job.id,
                vault: Arc::clone(vault),
                wait: if job.manual {
                    self.config.twofa_wait
                } else {
                    self.config.twofa_wait_automatic
                },
                poll: Duration::from_millis(500).min(self.config.poll),
            }),
        };
        // An account pointed at loopback runs against a sandbox, whose bank
        // links approve on GET: follow them (`gleaner demo`, runs by hand or
        // by the daemon). Never for a provider elsewhere: a loopback link
        // from a remote provider must not make this machine fetch a local
        // service.
        let sandbox = account
            .endpoint
            .as_deref()
            .is_some_and(|e| gleaner_framework::endpoint::check_endpoint(e, false).is_ok());
        let two_factor: Arc<dyn TwoFactorChannel> = if sandbox {
            Arc::new(gleaner_framework::twofa::LoopbackLinks::new(two_factor))
        } else {
            two_factor
        };
        let options = RunOptions {
            progress,
            two_factor,
            run_id: Some(job.run_id.clone()),
            oauth: oauth.clone(),
            sessions: sessions.clone(),
            cassette: attended.cassette,
            ..RunOptions::default()
        };
        let lost = Arc::new(Notify::new());
        let heartbeat = {
            let queue = Arc::clone(&self.queue);
            let owner = self.owner.clone();
            let lease = self.config.lease;
            let every = self.config.heartbeat;
            let lost = Arc::clone(&lost);
            let id = job.id;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match queue.heartbeat(id, &owner, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.notify_one();
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
                    }
                }
            })
        };
        let result = tokio::select! {
            r = run_konnector(konnector.as_ref(), &account, secrets, env, options) => r,
            () = lost.notified() => Err(KonnectorError::new(
                ErrorCode::UnknownError,
                "the job's lease was lost (the worker stalled longer than its lease); the run was stopped and nothing saved",
            )),
        };
        heartbeat.abort();
        result
    }

    /// Runs the daemon until `shutdown` completes: every `poll` (or
    /// earlier, when the queue says work may be ready:
    /// [`JobQueue::wait_for_work`]), it takes back dead workers' jobs,
    /// queues due triggers and starts jobs up to the limits. It beats in
    /// the queue's worker list ([`JobQueue::worker_beat`]) at start and
    /// every third of a lease, and leaves it at a clean stop. On shutdown it takes no new job, gives running ones the
    /// grace period, then stops the rest (nothing of theirs is saved) and
    /// queues them again.
    pub async fn run_daemon(
        self: Arc<Self>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<DaemonSummary> {
        tokio::pin!(shutdown);
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut summary = DaemonSummary::default();
        let mut last_sync: Option<tokio::time::Instant> = None;
        let mut last_prune: Option<tokio::time::Instant> = None;
        // The worker's heartbeat in the queue (`gleaner status` lists the
        // fleet): at start, then every third of a lease.
        let beat_every = (self.config.lease / 3).max(Duration::from_millis(100));
        let mut next_beat = tokio::time::Instant::now();
        tracing::info!(owner = %self.owner, concurrency = self.config.concurrency, per_konnector = self.config.per_konnector, "daemon started");
        loop {
            if tokio::time::Instant::now() >= next_beat {
                let in_flight = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
                if let Err(e) = self.queue.worker_beat(&self.owner, in_flight).await {
                    tracing::warn!(error = %e, "cannot record the worker's heartbeat");
                }
                next_beat = tokio::time::Instant::now() + beat_every;
            }
            if last_sync.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                if let Err(e) = self.sync_triggers().await {
                    tracing::error!(error = %e, "cannot sync triggers");
                }
                last_sync = Some(tokio::time::Instant::now());
            }
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                match self.queue.prune(self.config.retention).await {
                    Ok(n) if n > 0 => tracing::info!(pruned = n, "old job history pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "cannot prune history"),
                }
                last_prune = Some(tokio::time::Instant::now());
            }
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "cannot queue due runs");
            }
            let free = slots.available_permits();
            if free > 0 {
                let config = &self.config;
                match self
                    .queue
                    .claim_batch(&self.owner, config.lease, &|k| config.limit_for(k), free)
                    .await
                {
                    Ok(jobs) => {
                        for job in jobs {
                            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                                break;
                            };
                            let me = Arc::clone(&self);
                            tasks.spawn(async move {
                                let _permit = permit;
                                me.execute(job, None).await;
                            });
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot claim jobs"),
                }
            }
            while let Some(done) = tasks.try_join_next() {
                summary.finished += 1;
                if let Err(e) = done {
                    tracing::error!(error = %e, "a job task panicked");
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                // Early when another worker (or this one) queues a job or
                // frees a slot (PostgreSQL); after `poll` at the latest.
                () = self.queue.wait_for_work(self.config.poll) => {}
                () = tokio::time::sleep_until(next_beat) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    summary.finished += 1;
                    if let Err(e) = done {
                        tracing::error!(error = %e, "a job task panicked");
                    }
                }
            }
        }
        tracing::info!(
            running = tasks.len(),
            grace_secs = self.config.grace.as_secs(),
            "stopping: no new jobs"
        );
        let grace = tokio::time::sleep(self.config.grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = tasks.join_next() => match next {
                    Some(_) => summary.finished += 1,
                    None => break,
                },
                () = &mut grace => {
                    tracing::warn!(running = tasks.len(), "grace period over: stopping the remaining runs");
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let requeued = self.queue.requeue_owned(&self.owner).await;
        // A clean stop: this worker leaves the fleet's list (a crashed one
        // stays, its last beat ageing, until the history is pruned).
        if let Err(e) = self.queue.worker_gone(&self.owner).await {
            tracing::warn!(error = %e, "cannot remove the worker from the queue's list");
        }
        summary.requeued = requeued?;
        if !summary.requeued.is_empty() {
            tracing::warn!(jobs = ?summary.requeued, "queued again for the next start");
        }
        tracing::info!(finished = summary.finished, "daemon stopped");
        Ok(summary)
    }

    /// Each account's trigger with its schedule description, for
    /// `gleaner schedule` and `gleaner status`.
    pub async fn overview(&self) -> Result<Vec<(TriggerState, String)>> {
        self.sync_triggers().await?;
        let triggers = self.queue.triggers().await?;
        Ok(triggers
            .into_iter()
            .map(|t| {
                let d = self
                    .schedule_of(&t.account_id, &t.konnector, t.cron.as_deref())
                    .map_or_else(|| "unknown konnector".to_owned(), |s| s.describe());
                (t, d)
            })
            .collect())
    }

    /// The account labels by id (for tables).
    pub async fn labels(&self) -> Result<HashMap<String, String>> {
        Ok(self
            .accounts
            .list_accounts()
            .await?
            .into_iter()
            .map(|a| (a.id, a.label))
            .collect())
    }
}
