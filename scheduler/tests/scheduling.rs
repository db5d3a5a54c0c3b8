//! The scheduler against the Free Mobile sandbox, with a manual clock: no
//! test sleeps to make time pass. Runs are real konnector runs on loopback.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::store::{Account, AccountStore, DocStore, FileStore, SqliteStore};
use gleaner_framework::vault::Vault;
use gleaner_framework::{
    ErrorCode, ErrorSource, Konnector, KonnectorError, Manifest, RunContext, RunEnv, Secret,
    SourceKind, TwoFactorKind, UserAction, async_trait,
};
use gleaner_konnectors::telco::free_mobile::FreeMobile;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use gleaner_scheduler::queue::JobFilter;
use gleaner_scheduler::retry::AfterFailure;
use gleaner_scheduler::twofa::seal_code;
use gleaner_scheduler::{
    JobCode, JobState, KonnectorSource, ManualClock, Queue, Scheduler, SchedulerConfig,
    SchedulerError, TriggerKind,
};
use tempfile::TempDir;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Harness {
    dir: TempDir,
    sandbox: Sandbox,
    store: SqliteStore,
    clock: ManualClock,
    vault: Arc<Vault>,
    sched: Arc<Scheduler>,
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 1,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_retry_after: Duration::from_secs(1),
    }
}

fn konnectors(extra: Vec<Arc<dyn Konnector>>) -> Arc<dyn KonnectorSource> {
    let mut all: Vec<Arc<dyn Konnector>> = vec![Arc::new(FreeMobile::new().unwrap())];
    all.extend(extra);
    Arc::new(move |slug: &str| all.iter().find(|k| k.manifest().slug == slug).cloned())
}

impl Harness {
    async fn start(config: SchedulerConfig) -> Self {
        Self::start_with(config, Vec::new()).await
    }

    async fn start_with(config: SchedulerConfig, extra: Vec<Arc<dyn Konnector>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
        let store = SqliteStore::open(&dir.path().join("gleaner.db"))
            .await
            .unwrap();
        let clock = ManualClock::new(at("2026-11-23T12:00:00Z"));
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("vault.key")).unwrap());
        let sched = Self::scheduler(&dir, &store, &clock, &vault, config, "test", extra).await;
        Self {
            dir,
            sandbox,
            store,
            clock,
            vault,
            sched,
        }
    }

    async fn scheduler(
        dir: &TempDir,
        store: &SqliteStore,
        clock: &ManualClock,
        vault: &Arc<Vault>,
        config: SchedulerConfig,
        role: &str,
        extra: Vec<Arc<dyn Konnector>>,
    ) -> Arc<Scheduler> {
        let queue = Queue::open(store.pool().clone(), Arc::new(clock.clone()))
            .await
            .unwrap();
        Arc::new(Scheduler {
            queue: Arc::new(queue),
            env: RunEnv {
                store: Arc::new(store.clone()),
                files: FileStore::open(&dir.path().join("files")).unwrap(),
                retry: fast_retry(),
            },
            accounts: Arc::new(store.clone()),
            vault: Some(Arc::clone(vault)),
            konnectors: konnectors(extra),
            config,
            owner: Scheduler::new_owner(role),
            oauth: None,
            sessions: None,
            progress: None,
            tenant: gleaner_framework::tenant::TenantId::default_tenant(),
            tenants: None,
        })
    }

    async fn add(&self, id: &str, konnector: &str, password: &str) -> Account {
        let secrets = BTreeMap::from([("password".to_owned(), Secret::new(password))]);
        let account = Account {
            id: id.into(),
            konnector: konnector.into(),
            label: id.into(),
            fields: BTreeMap::from([("login".to_owned(), LOGIN.to_owned())]),
            sealed_secrets: self.vault.seal(id, &secrets).unwrap(),
            endpoint: Some(self.sandbox.base_url()),
            created_at: Utc::now(),
            folder: Account::default_folder(konnector, id),
        };
        self.store.put_account(&account).await.unwrap();
        account
    }

    /// Moves the clock to the account's next automatic run and ticks.
    async fn to_next_slot(&self, id: &str) -> Vec<i64> {
        self.sched.sync_triggers().await.unwrap();
        let t = self.sched.queue.trigger(id).await.unwrap().unwrap();
        self.clock.set(t.next_run_at);
        self.sched.tick().await.unwrap()
    }

    /// Claims and executes every job that is due now, one at a time.
    async fn run_due(&self) -> Vec<gleaner_scheduler::Executed> {
        let mut out = Vec::new();
        while let Some(job) = self.sched.claim().await.unwrap() {
            out.push(self.sched.execute(job, None).await);
        }
        out
    }

    async fn jobs(&self, id: &str) -> Vec<gleaner_scheduler::Job> {
        let mut jobs = self
            .sched
            .queue
            .jobs(&JobFilter {
                account_id: Some(id.into()),
                limit: 100,
                ..JobFilter::default()
            })
            .await
            .unwrap();
        jobs.reverse();
        jobs
    }
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        max_attempts: 3,
        retry_base: Duration::from_secs(60),
        retry_max: Duration::from_secs(3600),
        ..SchedulerConfig::default()
    }
}

#[tokio::test]
async fn a_slot_runs_the_account_and_records_the_job_and_trigger_state() {
    let h = Harness::start(config()).await;
    h.add("acc-1", "free-mobile", PASSWORD).await;
    assert!(
        h.sched.tick().await.unwrap().is_empty(),
        "nothing due at noon"
    );
    let queued = h.to_next_slot("acc-1").await;
    assert_eq!(queued.len(), 1);
    let ran = h.run_due().await;
    assert_eq!(ran.len(), 1);
    assert!(ran[0].result.is_ok(), "{:?}", ran[0].result.as_ref().err());
    let jobs = h.jobs("acc-1").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.trigger, TriggerKind::Slot);
    assert_eq!(job.attempt, 1);
    assert!(!job.manual);
    let report = job.report.as_ref().unwrap();
    assert_eq!(report["counts"]["io.cozy.bills"]["created"], 20);
    let t = h.sched.queue.trigger("acc-1").await.unwrap().unwrap();
    assert_eq!(t.status, "done");
    assert_eq!(t.last_success, Some(h.clock.now_for_test()));
    assert!(
        t.next_run_at > h.clock.now_for_test(),
        "moved to the next week"
    );
    assert_eq!(
        h.store.count_by_doctype().await.unwrap()["io.cozy.bills"],
        20
    );
}

trait NowForTest {
    fn now_for_test(&self) -> DateTime<Utc>;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> DateTime<Utc> {
        gleaner_scheduler::Clock::now(self)
    }
}

#[tokio::test]
async fn transient_errors_retry_with_backoff_until_the_cap() {
    let h = Harness::start(config()).await;
    h.add("acc-r", "free-mobile", PASSWORD).await;
    h.sandbox.set_scenario(Scenario::Unavailable);
    h.to_next_slot("acc-r").await;
    let start = h.clock.now_for_test();
    let mut delays = Vec::new();
    for attempt in 1..=3u32 {
        let ran = h.run_due().await;
        assert_eq!(ran.len(), 1, "attempt {attempt}");
        let e = ran[0].result.as_ref().err().unwrap();
        assert_eq!(e.code, ErrorCode::VendorDown);
        assert_eq!(ran[0].job.attempt, attempt);
        match ran[0].after {
            Some(AfterFailure::Retry(d)) => {
                assert!(attempt < 3);
                delays.push(d);
                let retry = h
                    .sched
                    .queue
                    .job(ran[0].retry.unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(retry.state, JobState::Queued);
                assert_eq!(retry.trigger, TriggerKind::Retry);
                assert_eq!(retry.attempt, attempt + 1);
                // Not due before its delay: nothing to claim a second early.
                h.clock
                    .advance(chrono::Duration::from_std(d).unwrap() - chrono::Duration::seconds(1));
                assert!(h.sched.claim().await.unwrap().is_none());
                h.clock.advance(chrono::Duration::seconds(1));
            }
            other => {
                assert_eq!(attempt, 3, "gave up early: {other:?}");
                assert_eq!(other, Some(AfterFailure::GiveUp));
                assert!(ran[0].retry.is_none());
            }
        }
    }
    // 60 s then 120 s, each with equal jitter: [30, 60] and [60, 120].
    assert!((30..=60).contains(&delays[0].as_secs()), "{delays:?}");
    assert!((60..=120).contains(&delays[1].as_secs()), "{delays:?}");
    assert!(h.clock.now_for_test() - start <= chrono::Duration::seconds(180));
    let jobs = h.jobs("acc-r").await;
    let states: Vec<_> = jobs
        .iter()
        .map(|j| (j.attempt, j.state, j.error_code.clone()))
        .collect();
    assert_eq!(
        states,
        vec![
            (1, JobState::Errored, Some(ErrorCode::VendorDown.into())),
            (2, JobState::Errored, Some(ErrorCode::VendorDown.into())),
            (3, JobState::Errored, Some(ErrorCode::VendorDown.into())),
        ]
    );
    // The provider is back: the next slot runs normally.
    h.sandbox.set_scenario(Scenario::Normal);
    h.to_next_slot("acc-r").await;
    assert!(h.run_due().await[0].result.is_ok());
    assert_eq!(
        h.sched
            .queue
            .trigger("acc-r")
            .await
            .unwrap()
            .unwrap()
            .status,
        "done"
    );
}

#[tokio::test]
async fn login_failed_skips_automatic_runs_until_credentials_change() {
    let h = Harness::start(config()).await;
    let account = h.add("acc-pw", "free-mobile", "wrong-password").await;
    h.to_next_slot("acc-pw").await;
    let ran = h.run_due().await;
    assert_eq!(
        ran[0].result.as_ref().err().unwrap().code,
        ErrorCode::LoginFailed
    );
    assert_eq!(ran[0].after, Some(AfterFailure::BlockAccount));
    assert!(ran[0].retry.is_none(), "LOGIN_FAILED is never retried");
    let posts = h.sandbox.login_posts();
    assert_eq!(posts, 1);

    // Two more nights (weeks): skipped, recorded, and no login attempt.
    for _ in 0..2 {
        assert!(h.to_next_slot("acc-pw").await.is_empty());
        assert!(h.run_due().await.is_empty());
    }
    assert_eq!(
        h.sandbox.login_posts(),
        posts,
        "a blocked account never logs in"
    );
    let jobs = h.jobs("acc-pw").await;
    let skipped: Vec<_> = jobs
        .iter()
        .filter(|j| j.state == JobState::Skipped)
        .collect();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0].error_code, Some(JobCode::SkippedNeedsUser));
    let why = skipped[0].error_message.as_ref().unwrap();
    assert!(why.contains("LOGIN_FAILED"), "{why}");
    assert!(
        !why.contains("gleaner "),
        "no command in a library's record: {why}"
    );
    let t = h.sched.queue.trigger("acc-pw").await.unwrap().unwrap();
    assert_eq!(
        t.blocked_code,
        Some(JobCode::Konnector(ErrorCode::LoginFailed))
    );

    // The person fixes the password: the block lifts and the next slot runs.
    let mut fixed = account.clone();
    let secrets = BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]);
    fixed.sealed_secrets = h.vault.seal(&fixed.id, &secrets).unwrap();
    h.store.put_account(&fixed).await.unwrap();
    h.sched.queue.credentials_changed("acc-pw").await.unwrap();
    assert_eq!(h.to_next_slot("acc-pw").await.len(), 1);
    assert!(h.run_due().await[0].result.is_ok());
    assert_eq!(
        h.sched
            .queue
            .trigger("acc-pw")
            .await
            .unwrap()
            .unwrap()
            .blocked_code,
        None
    );
}

#[tokio::test]
async fn a_successful_manual_run_lifts_the_block() {
    let h = Harness::start(config()).await;
    let account = h.add("acc-m", "free-mobile", "wrong-password").await;
    h.to_next_slot("acc-m").await;
    h.run_due().await;
    assert!(
        h.sched
            .queue
            .trigger("acc-m")
            .await
            .unwrap()
            .unwrap()
            .blocked_code
            .is_some()
    );
    // A manual run still goes while blocked; with a wrong password it
    // fails again and the block stays.
    let job = h
        .sched
        .queue
        .start_manual(
            "acc-m",
            "free-mobile",
            &h.sched.owner,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(job.manual);
    let ran = h.sched.execute(job, None).await;
    assert_eq!(ran.result.err().unwrap().code, ErrorCode::LoginFailed);
    assert!(
        h.sched
            .queue
            .trigger("acc-m")
            .await
            .unwrap()
            .unwrap()
            .blocked_code
            .is_some()
    );
    // Fixed credentials (without telling the scheduler) and a manual run.
    let mut fixed = account;
    fixed.sealed_secrets = h
        .vault
        .seal(
            &fixed.id,
            &BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]),
        )
        .unwrap();
    h.store.put_account(&fixed).await.unwrap();
    let job = h
        .sched
        .queue
        .start_manual(
            "acc-m",
            "free-mobile",
            &h.sched.owner,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(h.sched.execute(job, None).await.result.is_ok());
    let t = h.sched.queue.trigger("acc-m").await.unwrap().unwrap();
    assert_eq!(t.blocked_code, None);
    assert!(t.last_manual_execution.is_some());
    assert_eq!(
        h.to_next_slot("acc-m").await.len(),
        1,
        "automatic runs resume"
    );
}

#[tokio::test]
async fn a_missed_slot_runs_once_after_downtime() {
    let h = Harness::start(config()).await;
    h.add("acc-c", "free-mobile", PASSWORD).await;
    h.sched.sync_triggers().await.unwrap();
    let t = h.sched.queue.trigger("acc-c").await.unwrap().unwrap();
    // The daemon was down for five weeks: five slots missed.
    h.clock
        .set(t.next_run_at + chrono::Duration::weeks(5) - chrono::Duration::hours(1));
    let queued = h.sched.tick().await.unwrap();
    assert_eq!(queued.len(), 1, "one catch-up run, not one per missed slot");
    assert!(h.sched.tick().await.unwrap().is_empty());
    let job = h.sched.queue.job(queued[0]).await.unwrap().unwrap();
    assert_eq!(job.trigger, TriggerKind::CatchUp);
    let t2 = h.sched.queue.trigger("acc-c").await.unwrap().unwrap();
    assert!(t2.next_run_at > h.clock.now_for_test());
    assert!(t2.next_run_at - h.clock.now_for_test() <= chrono::Duration::weeks(1));
    assert!(h.run_due().await[0].result.is_ok());
}

#[tokio::test]
async fn a_slot_due_while_a_run_is_active_is_skipped_with_its_reason() {
    let h = Harness::start(config()).await;
    h.add("acc-busy", "free-mobile", PASSWORD).await;
    h.sched.sync_triggers().await.unwrap();
    let month = Duration::from_secs(31 * 86400);
    let job = h
        .sched
        .queue
        .start_manual("acc-busy", "free-mobile", &h.sched.owner, month)
        .await
        .unwrap();
    assert!(h.to_next_slot("acc-busy").await.is_empty());
    let jobs = h.jobs("acc-busy").await;
    assert_eq!(jobs[1].state, JobState::Skipped);
    assert_eq!(jobs[1].error_code, Some(JobCode::SkippedAlreadyActive));
    // And a second manual start is refused while the first holds the account.
    let busy = h
        .sched
        .queue
        .start_manual("acc-busy", "free-mobile", "other", Duration::from_secs(60))
        .await;
    assert!(
        busy.unwrap_err()
            .to_string()
            .contains(&format!("job #{}", job.id))
    );
    // Issue 8, defect 7: the refused start left nothing behind for a daemon
    // to run later (it used to leave a queued manual job).
    let queued: Vec<_> = h
        .jobs("acc-busy")
        .await
        .into_iter()
        .filter(|j| j.state == JobState::Queued)
        .collect();
    assert!(queued.is_empty(), "a refused run left {queued:?}");
}

#[tokio::test]
async fn the_per_provider_limit_holds_across_two_daemons_on_one_store() {
    // 12 accounts of one provider, two daemons each allowed 8 runs at once,
    // and a limit of 3 sessions against the provider: the sandbox counts
    // concurrent sessions.
    let mut cfg = config();
    cfg.concurrency = 8;
    cfg.per_konnector = 3;
    cfg.poll = Duration::from_millis(20);
    let h = Harness::start(cfg.clone()).await;
    let ids: Vec<String> = (0..12).map(|i| format!("acc-{i:02}")).collect();
    for id in &ids {
        h.add(id, "free-mobile", PASSWORD).await;
        let k = "free-mobile";
        h.sched.queue.enqueue_manual(id, k).await.unwrap();
    }
    let store2 = SqliteStore::open(&h.dir.path().join("gleaner.db"))
        .await
        .unwrap();
    let other = Harness::scheduler(
        &h.dir,
        &store2,
        &h.clock,
        &h.vault,
        cfg,
        "second",
        Vec::new(),
    )
    .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopper = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let d1 = tokio::spawn(Arc::clone(&h.sched).run_daemon(stopper(stop_rx.clone())));
    let d2 = tokio::spawn(Arc::clone(&other).run_daemon(stopper(stop_rx)));
    loop {
        let counts = h.sched.queue.counts().await.unwrap();
        if counts.get("done").copied().unwrap_or(0) == 12 {
            break;
        }
        assert_eq!(counts.get("errored"), None, "{counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(true).unwrap();
    let s1 = d1.await.unwrap().unwrap();
    let s2 = d2.await.unwrap().unwrap();
    assert_eq!(s1.finished + s2.finished, 12, "each job ran exactly once");
    let max = h.sandbox.max_concurrent_sessions();
    assert!(max <= 3, "{max} sessions at once against one provider");
    assert_eq!(max, 3, "the limit was reached, so the test shows it holds");
    assert_eq!(h.sandbox.login_posts(), 12);
    for id in &ids {
        let jobs = h.jobs(id).await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].state, JobState::Done);
    }
}

#[tokio::test]
async fn a_dead_workers_job_is_done_if_it_committed_and_queued_again_if_not() {
    let mut cfg = config();
    cfg.lease = Duration::from_secs(30);
    let h = Harness::start(cfg).await;
    h.add("acc-a", "free-mobile", PASSWORD).await;
    h.add("acc-b", "free-mobile", PASSWORD).await;
    let a = h
        .sched
        .queue
        .start_manual(
            "acc-a",
            "free-mobile",
            "dead-worker",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let b = h
        .sched
        .queue
        .start_manual(
            "acc-b",
            "free-mobile",
            "dead-worker",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    // Worker "dead-worker" committed a's run, then died before recording it;
    // it died during b's run.
    let account_a = h.store.get_account("acc-a").await.unwrap().unwrap();
    let secrets = h.vault.open("acc-a", &account_a.sealed_secrets).unwrap();
    let konnector = FreeMobile::new().unwrap();
    gleaner_framework::run_konnector(
        &konnector,
        &account_a,
        secrets,
        &h.sched.env,
        gleaner_framework::RunOptions {
            run_id: Some(a.run_id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        h.sched.queue.recover().await.unwrap().completed.is_empty(),
        "leases still valid"
    );
    h.clock.advance(chrono::Duration::seconds(31));
    let rec = h.sched.queue.recover().await.unwrap();
    assert_eq!(rec.completed, vec![a.id]);
    assert_eq!(rec.requeued, vec![b.id]);
    assert_eq!(
        h.sched.queue.job(a.id).await.unwrap().unwrap().state,
        JobState::Done
    );
    let b2 = h.sched.queue.job(b.id).await.unwrap().unwrap();
    assert_eq!((b2.state, b2.recoveries), (JobState::Queued, 1));
    let ran = h.run_due().await;
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].job.id, b.id);
    assert!(ran[0].result.is_ok());
    assert_eq!(
        h.store.count_by_doctype().await.unwrap()["io.cozy.bills"],
        40
    );
}

/// A konnector that asks for an emailed code and accepts only "424242".
struct AsksForACode;

static ASKS_MANIFEST: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();

#[async_trait]
impl Konnector for AsksForACode {
    fn manifest(&self) -> &Manifest {
        ASKS_MANIFEST.get_or_init(|| {
            Manifest::from_toml(
                "test",
                r#"
slug = "asks-code"
name = "Asks Code"
version = "1.0.0"
category = "insurance"
vendor_link = "https://example.org"
base_url = "https://example.org/"
hosts = ["example.org"]
frequency = "daily"
data_types = ["io.cozy.bills"]

[fields.login]
type = "text"
label = "Login"
identifier = true

[fields.password]
type = "password"
label = "Password"
"#,
            )
            .unwrap()
        })
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<(), KonnectorError> {
        loop {
            let code = ctx
                .two_factor(TwoFactorKind::Email, Some("j***@example.org"))
                .await?;
            if code.expose() == "424242" {
                return Ok(());
            }
        }
    }
}

#[tokio::test]
async fn a_manual_job_waits_in_awaiting_user_for_gleaner_2fa() {
    let mut cfg = config();
    cfg.twofa_wait = Duration::from_secs(30);
    cfg.poll = Duration::from_millis(20);
    let h = Harness::start_with(cfg, vec![Arc::new(AsksForACode)]).await;
    h.add("acc-2fa", "asks-code", PASSWORD).await;
    let id = h
        .sched
        .queue
        .enqueue_manual("acc-2fa", "asks-code")
        .await
        .unwrap();
    let job = h.sched.claim().await.unwrap().unwrap();
    let sched = Arc::clone(&h.sched);
    let run = tokio::spawn(async move { sched.execute(job, None).await });
    let wait_state = |state: JobState| {
        let q = h.sched.queue.clone();
        async move {
            for _ in 0..500 {
                if q.job(id).await.unwrap().unwrap().state == state {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("job never reached {state:?}");
        }
    };
    wait_state(JobState::AwaitingUser).await;
    let job = h.sched.queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.twofa_kind.as_deref(), Some("email"));
    assert_eq!(job.twofa_hint.as_deref(), Some("j***@example.org"));
    // A wrong code: the konnector asks again (attempt 2).
    h.sched
        .queue
        .give_answer(
            "acc-2fa",
            &seal_code(&h.vault, "acc-2fa", "111111").unwrap(),
        )
        .await
        .unwrap();
    // The run takes the code, finds it wrong and asks again.
    for _ in 0..500 {
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sched_twofa_answers")
            .fetch_one(h.store.pool())
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Between two questions the job is briefly `running`: a code given
    // then is refused ("no run waiting"), so give it until it is taken.
    let sealed = seal_code(&h.vault, "acc-2fa", "424242").unwrap();
    let mut given = false;
    for _ in 0..500 {
        if h.sched.queue.give_answer("acc-2fa", &sealed).await.is_ok() {
            given = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(given, "the job never asked again");
    let done = run.await.unwrap();
    assert!(
        done.result.is_ok(),
        "{:?}",
        done.result.err().map(|e| e.message)
    );
    let job = h.sched.queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done);
    // The sealed code never sits in the job table in clear.
    let raw: Vec<(String,)> = sqlx::query_as(
        "SELECT COALESCE(error_message, '') || COALESCE(report, '') FROM sched_jobs",
    )
    .fetch_all(h.store.pool())
    .await
    .unwrap();
    assert!(raw.iter().all(|(r,)| !r.contains("424242")));
}

#[tokio::test]
async fn an_unattended_run_asking_for_a_code_ends_twofa_expired_and_blocks() {
    let h = Harness::start_with(config(), vec![Arc::new(AsksForACode)]).await;
    h.add("acc-night", "asks-code", PASSWORD).await;
    h.to_next_slot("acc-night").await;
    let ran = h.run_due().await;
    let e = ran[0].result.as_ref().err().unwrap();
    assert_eq!(e.code, ErrorCode::UserActionNeededTwofaExpired);
    assert!(e.message.contains("acc-night"), "{}", e.message);
    // The library words no command: the next step is typed.
    assert!(!e.message.contains("gleaner "), "{}", e.message);
    assert_eq!(e.next_step(), Some(UserAction::AnswerTwoFactor));
    let t = h.sched.queue.trigger("acc-night").await.unwrap().unwrap();
    assert_eq!(
        t.blocked_code,
        Some(ErrorCode::UserActionNeededTwofaExpired.into())
    );
    // No one gives a code: gleaner 2fa has nothing to answer.
    let none = h
        .sched
        .queue
        .give_answer("acc-night", b"x")
        .await
        .unwrap_err();
    assert!(
        matches!(&none, SchedulerError::NoQuestion { account } if account == "acc-night"),
        "{none:?}"
    );
    assert!(
        none.to_string()
            .contains("no run of account acc-night is waiting")
    );
    assert_eq!(none.next_step(), Some(UserAction::SeeJobs));
}

#[tokio::test]
async fn shutdown_lets_runs_finish_within_grace_then_requeues_the_rest() {
    let mut cfg = config();
    cfg.grace = Duration::from_millis(200);
    cfg.poll = Duration::from_millis(20);
    cfg.twofa_wait = Duration::from_secs(3600);
    let h = Harness::start_with(cfg, vec![Arc::new(AsksForACode)]).await;
    h.add("acc-slow", "asks-code", PASSWORD).await;
    let id = h
        .sched
        .queue
        .enqueue_manual("acc-slow", "asks-code")
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(Arc::clone(&h.sched).run_daemon(async move {
        let _ = rx.await;
    }));
    for _ in 0..500 {
        if h.sched.queue.job(id).await.unwrap().unwrap().state == JobState::AwaitingUser {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(()).unwrap();
    let summary = daemon.await.unwrap().unwrap();
    assert_eq!(summary.requeued, vec![id]);
    let job = h.sched.queue.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert!(job.lease_owner.is_none());
}

#[tokio::test]
async fn history_is_pruned_after_the_retention_period() {
    let h = Harness::start(config()).await;
    h.add("acc-p", "free-mobile", PASSWORD).await;
    h.to_next_slot("acc-p").await;
    h.run_due().await;
    h.clock.advance(chrono::Duration::days(29));
    assert_eq!(
        h.sched
            .queue
            .prune(chrono::Duration::days(30))
            .await
            .unwrap(),
        0
    );
    h.clock.advance(chrono::Duration::days(2));
    assert_eq!(
        h.sched
            .queue
            .prune(chrono::Duration::days(30))
            .await
            .unwrap(),
        1
    );
    assert!(h.jobs("acc-p").await.is_empty());
}

/// A konnector that never answers: its run hits the manifest's time limit.
struct Hangs;

static HANGS_MANIFEST: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();

#[async_trait]
impl Konnector for Hangs {
    fn manifest(&self) -> &Manifest {
        HANGS_MANIFEST.get_or_init(|| {
            Manifest::from_toml(
                "test",
                r#"
slug = "hangs"
name = "Hangs"
version = "1.0.0"
category = "bank"
vendor_link = "https://example.org"
base_url = "https://example.org/"
hosts = ["example.org"]
frequency = "daily"
data_types = ["io.cozy.bills"]
timeout_secs = 1

[fields.login]
type = "text"
label = "Login"
identifier = true

[fields.password]
type = "password"
label = "Password"
"#,
            )
            .unwrap()
        })
    }

    async fn run(&self, _ctx: &mut RunContext) -> Result<(), KonnectorError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test]
async fn a_run_past_its_time_limit_is_stopped_recorded_as_a_timeout_and_retried() {
    let h = Harness::start_with(config(), vec![Arc::new(Hangs)]).await;
    h.add("acc-slow", "hangs", PASSWORD).await;
    h.to_next_slot("acc-slow").await;
    let ran = h.run_due().await;
    let e = ran[0].result.as_ref().err().unwrap();
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(e.message.contains("1 s limit"), "{}", e.message);
    assert!(matches!(ran[0].after, Some(AfterFailure::Retry(_))));
    let jobs = h.jobs("acc-slow").await;
    assert_eq!(jobs[0].state, JobState::Errored);
    assert_eq!(jobs[0].error_code, Some(ErrorCode::Timeout.into()));
    assert_eq!(jobs[1].state, JobState::Queued);
    assert_eq!(jobs[1].attempt, 2);
}

#[tokio::test]
async fn triggers_follow_accounts_added_and_removed() {
    let h = Harness::start(config()).await;
    h.add("acc-keep", "free-mobile", PASSWORD).await;
    h.add("acc-gone", "free-mobile", PASSWORD).await;
    h.sched.sync_triggers().await.unwrap();
    assert_eq!(h.sched.queue.triggers().await.unwrap().len(), 2);
    h.sched
        .queue
        .enqueue_manual("acc-gone", "free-mobile")
        .await
        .unwrap();
    let before = h.sched.queue.trigger("acc-keep").await.unwrap().unwrap();
    h.store.remove_account("acc-gone", false).await.unwrap();
    h.add("acc-new", "free-mobile", PASSWORD).await;
    h.sched.sync_triggers().await.unwrap();
    let ids: Vec<String> = h
        .sched
        .queue
        .triggers()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.account_id)
        .collect();
    assert_eq!(ids, vec!["acc-keep".to_owned(), "acc-new".to_owned()]);
    assert!(
        h.jobs("acc-gone").await.is_empty(),
        "its queued job went too"
    );
    let after = h.sched.queue.trigger("acc-keep").await.unwrap().unwrap();
    assert_eq!(before, after, "an existing trigger keeps its state");
}

/// Issue 8, defect 2: every column of the real schema (the store's tables
/// and the scheduler's, in one file) that can hold a vault record is in
/// `SEALED_COLUMNS`, the one list key rotation and `vault status` read.
#[tokio::test]
async fn every_sealed_column_of_the_schema_is_listed_for_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("gleaner.db"))
        .await
        .unwrap();
    Queue::open(store.pool().clone(), Arc::new(ManualClock::new(Utc::now())))
        .await
        .unwrap();
    let blobs: Vec<(String, String)> = sqlx::query_as(
        // sqlx's migrations tables keep a checksum, never a vault record.
        "SELECT m.name, c.name FROM sqlite_master m JOIN pragma_table_info(m.name) c
         WHERE m.type = 'table' AND upper(c.type) = 'BLOB'
           AND m.name NOT IN ('gleaner_store_migrations', 'gleaner_queue_migrations')
         ORDER BY 1, 2",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(!blobs.is_empty());
    let listed: Vec<(String, String)> = gleaner_framework::store::SEALED_COLUMNS
        .iter()
        .map(|c| (c.table.to_owned(), c.blob_column.to_owned()))
        .collect();
    for blob in &blobs {
        assert!(
            listed.contains(blob),
            "{}.{} holds blobs but is not in SEALED_COLUMNS",
            blob.0,
            blob.1
        );
    }
    for col in &listed {
        assert!(
            blobs.contains(col),
            "{col:?} is listed but not in the schema"
        );
    }
}

/// Issue 8 (rough edge), issue 14: a vault that cannot open the account's
/// sealed secrets (they were sealed with another key) is
/// `UNKNOWN_ERROR.VAULT_FAILED` whose `source()` is the vault, never blamed
/// on the person's credentials: no login happens, the account is not
/// paused, its next automatic run is queued (not skipped), and once the
/// record opens again that run succeeds.
#[tokio::test]
async fn a_vault_failure_does_not_pause_the_account() {
    use std::error::Error as _;
    let h = Harness::start(config()).await;
    let mut account = h.add("acc-vault", "free-mobile", PASSWORD).await;
    let other = Vault::open_or_create(&h.dir.path().join("other.key")).unwrap();
    let secrets = BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]);
    account.sealed_secrets = other.seal(&account.id, &secrets).unwrap();
    h.store.put_account(&account).await.unwrap();
    h.to_next_slot("acc-vault").await;
    let ran = h.run_due().await;
    let err = ran[0].result.as_ref().err().unwrap();
    assert_eq!(err.code, ErrorCode::VaultFailed, "{}", err.message);
    let source = err.source().expect("a vault failure names its source");
    assert_eq!(source.to_string(), "the vault");
    assert_eq!(
        source.downcast_ref::<ErrorSource>().map(ErrorSource::kind),
        Some(SourceKind::Vault)
    );
    assert!(!err.needs_user(), "{}", err.message);
    assert_eq!(err.next_step(), None, "no credentials to update");
    assert_eq!(ran[0].after, Some(AfterFailure::GiveUp));
    assert_eq!(h.sandbox.login_posts(), 0);
    let jobs = h.jobs("acc-vault").await;
    assert_eq!(jobs[0].state, JobState::Errored);
    assert_eq!(
        jobs[0].error_code.as_ref().map(JobCode::as_str),
        Some("UNKNOWN_ERROR.VAULT_FAILED")
    );
    let t = h.sched.queue.trigger("acc-vault").await.unwrap().unwrap();
    assert_eq!(t.blocked_code, None, "the account was paused");
    assert!(!t.paused);

    // The next slot queues a run (no `SKIPPED.NEEDS_USER`); it fails the
    // same way while the record does not open...
    assert_eq!(h.to_next_slot("acc-vault").await.len(), 1);
    let ran = h.run_due().await;
    assert_eq!(
        ran[0].result.as_ref().err().map(|e| e.code),
        Some(ErrorCode::VaultFailed)
    );
    // ...and succeeds at the slot after the record is sealed with the
    // vault's key again, with no credentials change and no manual run.
    account.sealed_secrets = h.vault.seal(&account.id, &secrets).unwrap();
    h.store.put_account(&account).await.unwrap();
    assert_eq!(h.to_next_slot("acc-vault").await.len(), 1);
    let ran = h.run_due().await;
    assert!(ran[0].result.is_ok(), "{:?}", ran[0].result.as_ref().err());
    assert!(
        h.jobs("acc-vault")
            .await
            .iter()
            .all(|j| j.state != JobState::Skipped),
        "an automatic run was skipped"
    );
}

/// A konnector whose run fails with a vault error mislabelled
/// `LOGIN_FAILED.NEEDS_SECRET`: the code path issue 14 guards against.
struct MislabelsAVaultFailure;

static MISLABELS_MANIFEST: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();

#[async_trait]
impl Konnector for MislabelsAVaultFailure {
    fn manifest(&self) -> &Manifest {
        MISLABELS_MANIFEST.get_or_init(|| {
            Manifest::from_toml(
                "test",
                r#"
slug = "mislabels"
name = "Mislabels"
version = "1.0.0"
category = "telco"
vendor_link = "https://example.org"
base_url = "https://example.org/"
hosts = ["example.org"]
frequency = "weekly"
data_types = ["io.cozy.bills"]

[fields.login]
type = "text"
label = "Login"
identifier = true

[fields.password]
type = "password"
label = "Password"
"#,
            )
            .unwrap()
        })
    }

    async fn run(&self, _ctx: &mut RunContext) -> Result<(), KonnectorError> {
        Err(KonnectorError::new(
            ErrorCode::LoginFailedNeedsSecret,
            "a sealed record did not open",
        )
        .with_source(ErrorSource::vault()))
    }
}

/// The scheduler decides on the source before the code: a vault-caused
/// error under a code that needs the person does not block the account.
#[tokio::test]
async fn a_vault_caused_error_never_blocks_even_under_a_login_code() {
    let h = Harness::start_with(config(), vec![Arc::new(MislabelsAVaultFailure)]).await;
    h.add("acc-mis", "mislabels", PASSWORD).await;
    h.to_next_slot("acc-mis").await;
    let ran = h.run_due().await;
    let err = ran[0].result.as_ref().err().unwrap();
    assert_eq!(err.code, ErrorCode::LoginFailedNeedsSecret);
    assert_eq!(ran[0].after, Some(AfterFailure::GiveUp));
    let t = h.sched.queue.trigger("acc-mis").await.unwrap().unwrap();
    assert_eq!(t.blocked_code, None, "the account was paused");
    assert_eq!(
        h.to_next_slot("acc-mis").await.len(),
        1,
        "the next automatic run is queued, not skipped"
    );
}

/// A secret the person never gave is still `LOGIN_FAILED.NEEDS_SECRET`
/// (no source: it is not a vault or store failure), and blocks automatic
/// runs until the credentials change: retrying cannot make it appear.
#[tokio::test]
async fn a_missing_secret_needs_the_person_and_blocks() {
    use std::error::Error as _;
    let h = Harness::start(config()).await;
    let mut account = h.add("acc-nosecret", "free-mobile", PASSWORD).await;
    account.sealed_secrets = h.vault.seal(&account.id, &BTreeMap::new()).unwrap();
    h.store.put_account(&account).await.unwrap();
    h.to_next_slot("acc-nosecret").await;
    let ran = h.run_due().await;
    let err = ran[0].result.as_ref().err().unwrap();
    assert_eq!(
        err.code,
        ErrorCode::LoginFailedNeedsSecret,
        "{}",
        err.message
    );
    assert!(err.message.contains("password"), "{}", err.message);
    assert!(err.source().is_none(), "{:?}", err.source);
    assert!(err.needs_user());
    assert_eq!(err.next_step(), Some(UserAction::UpdateCredentials));
    assert_eq!(ran[0].after, Some(AfterFailure::BlockAccount));
    assert_eq!(h.sandbox.login_posts(), 0, "no login without a password");
    let t = h
        .sched
        .queue
        .trigger("acc-nosecret")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.blocked_code.as_ref().map(JobCode::as_str),
        Some("LOGIN_FAILED.NEEDS_SECRET")
    );
    assert!(h.to_next_slot("acc-nosecret").await.is_empty());
    let jobs = h.jobs("acc-nosecret").await;
    assert_eq!(
        jobs.last()
            .and_then(|j| j.error_code.as_ref().map(JobCode::as_str)),
        Some("SKIPPED.NEEDS_USER")
    );
}

#[tokio::test]
async fn a_paused_account_is_never_queued_and_resumed_it_is() {
    let h = Harness::start(config()).await;
    h.add("acc-p", "free-mobile", PASSWORD).await;
    h.sched.sync_triggers().await.unwrap();
    h.sched.queue.set_paused("acc-p", true).await.unwrap();
    assert!(
        h.sched
            .queue
            .trigger("acc-p")
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    // Three slots go by: no job, not even a skipped record, no login.
    for _ in 0..3 {
        assert!(h.to_next_slot("acc-p").await.is_empty());
        assert!(h.run_due().await.is_empty());
    }
    assert!(
        h.jobs("acc-p").await.is_empty(),
        "{:?}",
        h.jobs("acc-p").await
    );
    assert_eq!(h.sandbox.login_posts(), 0);
    let t = h.sched.queue.trigger("acc-p").await.unwrap().unwrap();
    assert!(
        t.next_run_at > h.clock.now_for_test(),
        "the trigger moves on while paused"
    );
    // A manual run still works.
    let job = h
        .sched
        .queue
        .start_manual("acc-p", "free-mobile", &h.sched.owner, h.sched.config.lease)
        .await
        .unwrap();
    assert!(h.sched.execute(job, None).await.result.is_ok());
    // Resumed: the next slot queues it again.
    h.sched.queue.set_paused("acc-p", false).await.unwrap();
    assert!(
        !h.sched
            .queue
            .trigger("acc-p")
            .await
            .unwrap()
            .unwrap()
            .paused
    );
    assert_eq!(h.to_next_slot("acc-p").await.len(), 1);
    assert!(h.run_due().await[0].result.is_ok());
    // An account without a trigger cannot be paused.
    assert!(matches!(
        h.sched.queue.set_paused("nobody", true).await,
        Err(SchedulerError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_queue_opened_on_an_older_schema_gains_the_paused_column() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("gleaner.db"))
        .await
        .unwrap();
    // The table as versions before `paused` made it, with one trigger.
    sqlx::query(
        "CREATE TABLE sched_triggers (
            account_id TEXT PRIMARY KEY, konnector TEXT NOT NULL, cron TEXT,
            next_run_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'new',
            last_execution TEXT, last_success TEXT, last_failure TEXT,
            last_manual_execution TEXT, last_error_code TEXT, last_error_message TEXT,
            blocked_code TEXT, updated_at TEXT NOT NULL)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sched_triggers (account_id, konnector, next_run_at, updated_at)
         VALUES ('old', 'free-mobile', '2026-11-24T02:00:00.000000Z', '2026-11-23T12:00:00.000000Z')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let clock = ManualClock::new(at("2026-11-23T12:00:00Z"));
    let queue = Queue::open(store.pool().clone(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let t = queue.trigger("old").await.unwrap().unwrap();
    assert!(!t.paused);
    queue.set_paused("old", true).await.unwrap();
    // Opening again (another process) leaves it as it is.
    let queue = Queue::open(store.pool().clone(), Arc::new(clock))
        .await
        .unwrap();
    assert!(queue.trigger("old").await.unwrap().unwrap().paused);
}

#[tokio::test]
async fn codes_this_build_does_not_know_still_read_as_they_were_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("gleaner.db"))
        .await
        .unwrap();
    let clock = ManualClock::new(at("2026-11-23T12:00:00Z"));
    let queue = Queue::open(store.pool().clone(), Arc::new(clock))
        .await
        .unwrap();
    // Rows as another version may have written them: a code since renamed
    // or removed, beside known ones.
    sqlx::query(
        "INSERT INTO sched_triggers (account_id, konnector, next_run_at, updated_at, status,
            last_error_code, blocked_code)
         VALUES ('old', 'free-mobile', '2026-11-24T02:00:00.000000Z', '2026-11-23T12:00:00.000000Z',
            'errored', 'LOGIN_FAILED.SOMETHING_OLD', 'LOGIN_FAILED')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
            queued_at, not_before, finished_at, error_code, error_message)
         VALUES ('old', 'free-mobile', 'slot', 0, 1, 'skipped', 'job-x', '2026-11-23T12:00:00.000000Z',
            '2026-11-23T12:00:00.000000Z', '2026-11-23T12:00:00.000000Z', 'SKIPPED.SOMETHING_NEW', 'why')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let t = queue.trigger("old").await.unwrap().unwrap();
    assert_eq!(
        t.last_error_code,
        Some(JobCode::Other("LOGIN_FAILED.SOMETHING_OLD".into()))
    );
    assert_eq!(t.blocked_code, Some(ErrorCode::LoginFailed.into()));
    let jobs = queue.jobs(&JobFilter::default()).await.unwrap();
    let code = jobs[0].error_code.as_ref().unwrap();
    assert_eq!(code, &JobCode::Other("SKIPPED.SOMETHING_NEW".into()));
    assert_eq!(code.to_string(), "SKIPPED.SOMETHING_NEW");
    assert_eq!(
        serde_json::to_value(&jobs[0]).unwrap()["error_code"],
        "SKIPPED.SOMETHING_NEW"
    );
}

#[tokio::test]
async fn the_progress_hook_sees_a_daemon_jobs_progress() {
    let mut h = Harness::start(config()).await;
    let seen: Arc<std::sync::Mutex<Vec<(i64, u64, String)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    Arc::get_mut(&mut h.sched).unwrap().progress = Some(Arc::new(
        move |job: i64, p: &gleaner_framework::Progress| {
            sink.lock().unwrap().push((job, p.done, p.message.clone()));
        },
    ));
    h.add("acc-prog", "free-mobile", PASSWORD).await;
    let queued = h.to_next_slot("acc-prog").await;
    assert_eq!(queued.len(), 1);
    let ran = h.run_due().await;
    assert!(ran[0].result.is_ok(), "{:?}", ran[0].result.as_ref().err());
    {
        let seen = seen.lock().unwrap();
        assert!(!seen.is_empty(), "no progress reached the hook");
        assert!(seen.iter().all(|(job, _, _)| *job == queued[0]), "{seen:?}");
        assert!(seen.iter().any(|(_, _, m)| m == "done"), "{seen:?}");
    }
    // An attended run's own callback takes the progress, not the hook.
    let before = seen.lock().unwrap().len();
    let attended_saw = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&attended_saw);
    let job = h
        .sched
        .queue
        .start_manual(
            "acc-prog",
            "free-mobile",
            &h.sched.owner,
            h.sched.config.lease,
        )
        .await
        .unwrap();
    let attended = gleaner_scheduler::Attended {
        progress: Some(Arc::new(move |_: &gleaner_framework::Progress| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })),
        ..gleaner_scheduler::Attended::default()
    };
    assert!(h.sched.execute(job, Some(attended)).await.result.is_ok());
    assert!(attended_saw.load(std::sync::atomic::Ordering::SeqCst) > 0);
    assert_eq!(seen.lock().unwrap().len(), before);
}

/// Resolves every tenant to one scope, recording which tenants were asked.
struct OneScope {
    scope: Arc<gleaner_scheduler::TenantScope>,
    asked: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl gleaner_scheduler::TenantScopes for OneScope {
    async fn scope(
        &self,
        tenant: &gleaner_framework::tenant::TenantId,
    ) -> Result<Arc<gleaner_scheduler::TenantScope>, KonnectorError> {
        self.asked.lock().unwrap().push(tenant.to_string());
        Ok(Arc::clone(&self.scope))
    }
}

#[tokio::test]
async fn a_job_of_another_tenant_without_a_resolver_fails_naming_it() {
    let mut h = Harness::start(config()).await;
    Arc::get_mut(&mut h.sched).unwrap().tenant =
        gleaner_framework::tenant::TenantId::parse("alice").unwrap();
    h.add("acc-t", "free-mobile", PASSWORD).await;
    assert_eq!(h.to_next_slot("acc-t").await.len(), 1);
    let ran = h.run_due().await;
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].job.tenant.as_str(), "default");
    let err = ran[0].result.as_ref().unwrap_err();
    assert!(
        err.message.contains("tenant default") && err.message.contains("tenant alice"),
        "{err}"
    );
}

#[tokio::test]
async fn a_job_of_another_tenant_runs_with_that_tenants_scope() {
    let mut h = Harness::start(config()).await;
    // The scheduler's own fields are alice's (an empty store, no vault):
    // the default tenant's job can only run with the resolved scope.
    let elsewhere = tempfile::tempdir().unwrap();
    let empty = SqliteStore::open(&elsewhere.path().join("gleaner.db"))
        .await
        .unwrap();
    let scopes = Arc::new(OneScope {
        scope: Arc::new(gleaner_scheduler::TenantScope {
            env: RunEnv {
                store: Arc::new(h.store.clone()),
                files: FileStore::open(&h.dir.path().join("files")).unwrap(),
                retry: fast_retry(),
            },
            accounts: Arc::new(h.store.clone()),
            vault: Arc::clone(&h.vault),
            oauth: None,
            sessions: None,
        }),
        asked: std::sync::Mutex::default(),
    });
    {
        let s = Arc::get_mut(&mut h.sched).unwrap();
        s.tenant = gleaner_framework::tenant::TenantId::parse("alice").unwrap();
        s.accounts = Arc::new(empty);
        s.vault = None;
        s.tenants = Some(Arc::clone(&scopes) as Arc<dyn gleaner_scheduler::TenantScopes>);
    }
    h.add("acc-s", "free-mobile", PASSWORD).await;
    assert_eq!(h.to_next_slot("acc-s").await.len(), 1);
    let ran = h.run_due().await;
    assert_eq!(ran.len(), 1);
    assert!(ran[0].result.is_ok(), "{:?}", ran[0].result.as_ref().err());
    assert_eq!(*scopes.asked.lock().unwrap(), ["default"]);
}
