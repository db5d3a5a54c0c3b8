//! Scheduler benchmark: planning and concurrent runs.
//!
//! Run with `cargo bench --bench scheduler`. A plain program
//! (`harness = false`): each phase runs in a child process of its own, so
//! its peak RSS (`VmHWM`) is the whole process's peak for that phase alone,
//! tokio runtime, store, sandbox and all.
//!
//! - **Planning**: the next automatic run of 100,000 accounts (slot from a
//!   SHA-256 of the id, window, weekday), then writing their triggers to
//!   the SQLite queue, then queuing all 100,000 as due at once (the worst
//!   night: every trigger due in one tick).
//! - **Concurrent runs**: 1,000 Free Mobile accounts, all queued, run by
//!   one daemon allowed 1,000 runs at once, against the Free Mobile sandbox
//!   on loopback (login, pages, 20 PDFs each, commit). The sandbox runs in a
//!   child process, so the peak RSS is Gleaner's whole process alone.
//!
//! `GLEANER_BENCH_SCALE` (a float, default 1.0) scales both counts.

#![allow(clippy::unwrap_used)]

mod common;
use common::status_kib;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::manifest::Frequency;
use gleaner_framework::store::{Account, AccountStore, DocStore, FileStore, SqliteStore};
use gleaner_framework::vault::Vault;
use gleaner_framework::{Konnector, RunEnv, Secret};
use gleaner_konnectors::telco::free_mobile::FreeMobile;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use gleaner_scheduler::plan::Schedule;
use gleaner_scheduler::{
    Clock, KonnectorSource, ManualClock, Queue, Scheduler, SchedulerConfig, SystemClock,
};

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn scale() -> f64 {
    std::env::var("GLEANER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn scaled(n: f64) -> usize {
    ((n * scale()).round() as usize).max(1)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    match args.next().as_deref() {
        Some("plan") => return phase_plan(),
        Some("runs") => return phase_runs(),
        Some("sandbox") => return serve_sandbox(),
        _ => {}
    }
    println!("gleaner scheduler benchmark (scale {})", scale());
    println!(
        "machine: {} CPUs, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| format!(
                "load average {}",
                l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            ))
            .unwrap_or_default()
    );
    let exe = std::env::current_exe()?;
    for phase in ["plan", "runs"] {
        let out = std::process::Command::new(&exe)
            .arg(phase)
            .output()
            .with_context(|| format!("cannot run the {phase} phase"))?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            bail!("the {phase} phase failed");
        }
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn phase_plan() -> Result<()> {
    let n = scaled(100_000.0);
    let now = Utc::now();
    let ids: Vec<String> = (0..n).map(|i| format!("account-{i:06}")).collect();
    let rss_before = status_kib("VmRSS");

    let t = Instant::now();
    let plan: Vec<(String, String, chrono::DateTime<Utc>)> = ids
        .iter()
        .map(|id| {
            let next = Schedule::auto(id, Frequency::Weekly, [0, 5])
                .next_after(now, chrono_tz::Tz::UTC)
                .unwrap();
            (id.clone(), "free-mobile".to_owned(), next)
        })
        .collect();
    let pure = t.elapsed();
    let mut per_minute: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, _, at) in &plan {
        *per_minute.entry(at.timestamp() / 60).or_default() += 1;
    }
    let busiest = per_minute.values().copied().max().unwrap_or(0);

    let dir = tempfile::tempdir()?;
    let rt = runtime()?;
    let (sync, tick, queued) = rt.block_on(async {
        let store = SqliteStore::open(&dir.path().join("gleaner.db")).await?;
        let clock = ManualClock::new(now);
        let queue = Queue::open(store.pool().clone(), Arc::new(clock.clone())).await?;
        let t = Instant::now();
        queue.add_triggers(&plan).await?;
        let sync = t.elapsed();
        // The worst night: every trigger due at once.
        clock.set(now + chrono::Duration::days(8));
        let t = Instant::now();
        let mut queued = 0;
        loop {
            let q = queue
                .enqueue_due(
                    &|_, after| Some(after + chrono::Duration::weeks(1)),
                    chrono::Duration::hours(1),
                )
                .await?;
            if q.is_empty() {
                break;
            }
            queued += q.len();
        }
        anyhow::Ok((sync, t.elapsed(), queued))
    })?;
    anyhow::ensure!(queued == n, "queued {queued} of {n}");
    println!("\n## (a) planning the next runs of {n} accounts");
    println!(
        "  slots computed (pure):        {:>8.3} s  ({:.0} accounts/s)",
        pure.as_secs_f64(),
        n as f64 / pure.as_secs_f64()
    );
    println!(
        "  busiest minute:               {busiest} accounts ({:.3} % of {n}) over {} minutes used",
        busiest as f64 * 100.0 / n as f64,
        per_minute.len()
    );
    println!(
        "  triggers written (SQLite):    {:>8.3} s",
        sync.as_secs_f64()
    );
    println!(
        "  all due queued in one night:  {:>8.3} s  ({:.0} jobs/s)",
        tick.as_secs_f64(),
        n as f64 / tick.as_secs_f64()
    );
    println!(
        "  RSS before / peak:            {} / {}",
        mib(rss_before),
        mib(status_kib("VmHWM"))
    );
    Ok(())
}

/// The provider's side, in a process of its own so that the runs' figures
/// are Gleaner's alone: prints the sandbox's URL, serves until stdin closes,
/// then prints its counters.
fn serve_sandbox() -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let sandbox = Sandbox::start(Scenario::Normal).await?;
        println!("{}", sandbox.base_url());
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await?;
        println!(
            "{} {} {}",
            sandbox.max_concurrent_sessions(),
            sandbox.requests(),
            mib(status_kib("VmHWM"))
        );
        anyhow::Ok(())
    })
}

fn phase_runs() -> Result<()> {
    let n = scaled(1000.0);
    let dir = tempfile::tempdir()?;
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .arg("sandbox")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start the sandbox process")?;
    let mut server_out = std::io::BufReader::new(server.stdout.take().context("no stdout")?);
    let mut base_url = String::new();
    std::io::BufRead::read_line(&mut server_out, &mut base_url)?;
    let base_url = base_url.trim().to_owned();
    let rt = runtime()?;
    let result = rt.block_on(async {
        let store = SqliteStore::open(&dir.path().join("gleaner.db")).await?;
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("vault.key"))?);
        let secrets = BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let queue = Queue::open(store.pool().clone(), clock).await?;
        for i in 0..n {
            let id = format!("acc-{i:05}");
            store
                .put_account(&Account {
                    sealed_secrets: vault.seal(&id, &secrets)?,
                    id: id.clone(),
                    konnector: "free-mobile".into(),
                    label: id.clone(),
                    fields: BTreeMap::from([("login".to_owned(), LOGIN.to_owned())]),
                    endpoint: Some(base_url.clone()),
                    created_at: Utc::now(),
                    folder: Account::default_folder("Free Mobile", &id),
                })
                .await?;
            queue.enqueue_manual(&id, "free-mobile").await?;
        }
        let konnector: Arc<dyn Konnector> = Arc::new(FreeMobile::new()?);
        let konnectors: Arc<dyn KonnectorSource> =
            Arc::new(move |_: &str| Some(Arc::clone(&konnector)));
        let config = SchedulerConfig {
            concurrency: n,
            per_konnector: n,
            poll: Duration::from_millis(20),
            ..SchedulerConfig::default()
        };
        let sched = Arc::new(Scheduler {
            queue: Arc::new(queue.clone()),
            env: RunEnv {
                store: Arc::new(store.clone()),
                files: FileStore::open(&dir.path().join("files"))?,
                retry: RetryPolicy::default(),
            },
            accounts: Arc::new(store.clone()),
            vault: Some(vault),
            konnectors,
            config,
            owner: Scheduler::new_owner("bench"),
            oauth: None,
            sessions: None,
            progress: None,
            tenant: gleaner_framework::tenant::TenantId::default_tenant(),
            tenants: None,
        });
        let rss_before = status_kib("VmRSS");
        let t = Instant::now();
        let peak_running = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let watcher = {
            let queue = queue.clone();
            let peak_running = Arc::clone(&peak_running);
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let c = queue.counts().await.unwrap_or_default();
                    peak_running.fetch_max(
                        c.get("running").copied().unwrap_or(0),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let ended = c.get("done").copied().unwrap_or(0)
                        + c.get("errored").copied().unwrap_or(0);
                    if ended as usize >= n {
                        return;
                    }
                }
            }
        };
        let summary = Arc::clone(&sched).run_daemon(watcher).await?;
        let wall = t.elapsed();
        let counts = queue.counts().await?;
        let docs = store.count_by_doctype().await?;
        println!("\n## (b) {n} concurrent konnector runs against the local sandbox");
        println!(
            "  wall time:                    {:>8.3} s",
            wall.as_secs_f64()
        );
        println!(
            "  jobs per second:              {:>8.1}",
            n as f64 / wall.as_secs_f64()
        );
        println!(
            "  jobs done / errored:          {} / {}",
            counts.get("done").copied().unwrap_or(0),
            counts.get("errored").copied().unwrap_or(0)
        );
        println!("  documents in store:           {docs:?}");
        println!(
            "  RSS before runs / peak:       {} / {}",
            mib(rss_before),
            mib(status_kib("VmHWM"))
        );
        println!(
            "  peak per queued run:          {:.0} KiB",
            status_kib("VmHWM")
                .unwrap_or(0)
                .saturating_sub(rss_before.unwrap_or(0)) as f64
                / n as f64
        );
        println!(
            "  threads at the end:           {}",
            status_kib("Threads").unwrap_or(0)
        );
        println!(
            "  runs in flight at once (max): {}",
            peak_running.load(std::sync::atomic::Ordering::Relaxed)
        );
        anyhow::ensure!(
            summary.finished as usize == n,
            "finished {} of {n}",
            summary.finished
        );
        anyhow::Ok(())
    });
    drop(server.stdin.take());
    let mut counters = String::new();
    std::io::BufRead::read_line(&mut server_out, &mut counters)?;
    server.wait()?;
    let mut parts = counters.split_whitespace();
    println!(
        "  requests in flight (max):     {} (counted by the sandbox)",
        parts.next().unwrap_or("?")
    );
    println!(
        "  HTTP requests served:         {}",
        parts.next().unwrap_or("?")
    );
    println!(
        "  sandbox process peak RSS:     {} (the provider's side, not counted above)",
        parts.collect::<Vec<_>>().join(" ")
    );
    result
}
