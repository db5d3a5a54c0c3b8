//! Gleaner's own cost per Cozy Node konnector run (issue 13).
//!
//! Run with `cargo bench --bench cozy`. A plain program (`harness = false`)
//! that prints figures and asserts nothing on time. Needs `node` (and `npm`
//! when `fixtures/cozy/freemobile/build` is not built yet); without them it
//! prints one `skipped:` line.
//!
//! An external konnector run costs two processes: `node` running the
//! konnector (the konnector's cost, as on cozy-stack), and Gleaner serving
//! it: the stack API on loopback, the egress proxy every request goes
//! through, the process spawn and its output, then the staging and the
//! commit. This bench separates the two with `getrusage`: `RUSAGE_SELF` is
//! Gleaner's CPU (every thread of the bench process, which does nothing
//! else during a run), `RUSAGE_CHILDREN` is node's (reaped children only:
//! the run waits for its node, and the sandbox is reaped at the very end).
//!
//! Each phase runs in a child process of its own, so its memory figures are
//! not inflated by an earlier phase; the Free Mobile sandbox runs in another
//! child process (this same binary, `sandbox`), so the provider's CPU is not
//! counted as Gleaner's; it reports its own CPU on request.
//!
//! - **cozy**: the test konnector `fixtures/cozy/freemobile/build`
//!   (cozy-konnector-libs 4.x) installed with an allow-list of
//!   `127.0.0.1`, run `GLEANER_BENCH_COZY_RUNS` times (default 10) through
//!   `run_konnector` against the sandbox: the first run imports 20 bills and
//!   20 PDFs, the later ones import nothing. Then
//!   `GLEANER_BENCH_COZY_EXTRA_FILES` (default 1,000; 0: none) more
//!   `io.cozy.files` documents are committed to the account, in another
//!   folder, and 3 more runs show how the cost of a run grows with the
//!   account's history.
//! - **builtin**: the same for the built-in Rust `free-mobile` konnector,
//!   same sandbox, same store: what an equivalent Rust konnector costs in
//!   total.
//! - **pieces**: the parts alone: a run of a konnector that does nothing
//!   (the framework's fixed cost), a Node konnector whose `index.js` is
//!   empty (the Cozy host's fixed cost plus node's start), `Stack::start` +
//!   stop, `EgressProxy::start` + shutdown, the SHA-256 check of the
//!   bundle's `index.js` every run does, a `NodeProcess` spawn to exit,
//!   `node -e ''`, and the proxy's CPU per forwarded plain-HTTP request.
//!
//! Memory: Gleaner's `VmRSS` before and after each run and its peak during
//! the run (`VmHWM`, reset before the run through `/proc/self/clear_refs`);
//! node's peak from a thread that reads `VmHWM` of `/proc/<node>/status`
//! every 20 ms (its own CPU, read with `RUSAGE_THREAD`, is taken out of
//! Gleaner's), checked against `ru_maxrss` of `RUSAGE_CHILDREN`.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
use common::{pid_status_kib, status_kib};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use chrono::Utc;
use gleaner_cozy_host::install::{InstallOptions, install, sha256_of};
use gleaner_cozy_host::process::{Launch, NodeProcess, node_binary};
use gleaner_cozy_host::proxy::{EgressProxy, ProxyPolicy};
use gleaner_cozy_host::stack::{Stack, StackConfig};
use gleaner_cozy_host::{Installed, NodeKonnector};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::ids::new_id;
use gleaner_framework::store::{
    Account, AccountStore, FileStore, RunCommit, SqliteStore, StagedDoc,
};
use gleaner_framework::{
    Konnector, KonnectorError, Manifest, RunContext, RunEnv, RunOptions, RunReport, Secret,
    async_trait, run_konnector,
};
use gleaner_konnectors::Registry;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use serde::{Deserialize, Serialize};

/// Where each phase hands its figures to the parent, one JSON line.
const FIGURES: &str = "@@figures ";
/// Iterations of the cheap pieces (server start and stop).
const FAST: u32 = 200;
/// Iterations of the pieces that start node.
const SPAWNS: u32 = 20;
/// Requests through the proxy, and directly.
const REQUESTS: u32 = 500;

/// CPU time and peak RSS from `getrusage`.
#[cfg(unix)]
mod usage {
    use std::time::Duration;

    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike;

    fn cpu(who: UsageWho) -> Duration {
        getrusage(who).map_or(Duration::ZERO, |u| {
            let us = u.user_time().num_microseconds() + u.system_time().num_microseconds();
            Duration::from_micros(u64::try_from(us).unwrap_or(0))
        })
    }

    /// User + system time of every thread of this process.
    pub fn own() -> Duration {
        cpu(UsageWho::RUSAGE_SELF)
    }

    /// User + system time of the children reaped so far.
    pub fn children() -> Duration {
        cpu(UsageWho::RUSAGE_CHILDREN)
    }

    /// User + system time of the calling thread.
    pub fn thread() -> Duration {
        cpu(UsageWho::RUSAGE_THREAD)
    }

    /// The largest peak RSS of a reaped child, in KiB.
    pub fn children_max_rss_kib() -> u64 {
        getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0))
    }
}

#[cfg(not(unix))]
mod usage {
    use std::time::Duration;
    pub fn own() -> Duration {
        Duration::ZERO
    }
    pub fn children() -> Duration {
        Duration::ZERO
    }
    pub fn thread() -> Duration {
        Duration::ZERO
    }
    pub fn children_max_rss_kib() -> u64 {
        0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Resets this process's `VmHWM` to its current RSS (Linux 4.0+).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The test konnector's bundle, built when missing and npm is there.
fn bundle() -> Result<PathBuf, String> {
    gleaner_testing::cozy::freemobile_bundle()
}

fn runs() -> usize {
    std::env::var("GLEANER_BENCH_COZY_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10usize)
        .max(2)
}

fn extra_files() -> usize {
    std::env::var("GLEANER_BENCH_COZY_EXTRA_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000usize)
}

/// Runs after the extra files are committed.
const HISTORY_RUNS: usize = 3;

fn kerr(e: KonnectorError) -> anyhow::Error {
    anyhow!("{}: {}", e.code, e.message)
}

// ---------------------------------------------------------------------------
// The provider, in a process of its own.

/// Serves the Free Mobile sandbox: prints its URL, then for each line read
/// on stdin prints `<requests served> <own CPU in µs>`, until stdin closes.
fn serve_sandbox() -> Result<()> {
    let rt = runtime()?;
    let sandbox = rt.block_on(Sandbox::start(Scenario::Normal))?;
    println!("{}", sandbox.base_url());
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        line.clear();
        println!("{} {}", sandbox.requests(), usage::own().as_micros());
    }
    rt.block_on(sandbox.shutdown());
    Ok(())
}

/// The sandbox's process, seen from the bench.
struct Provider {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    url: String,
}

impl Provider {
    fn start() -> Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("sandbox")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the sandbox process")?;
        let mut out = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut url = String::new();
        out.read_line(&mut url)?;
        Ok(Self {
            child,
            out,
            url: url.trim().to_owned(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Requests served and CPU used by the sandbox so far.
    fn counters(&mut self) -> Result<(u64, Duration)> {
        let stdin = self.child.stdin.as_mut().context("no stdin")?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        let mut parts = line.split_whitespace().map(|p| p.parse::<u64>());
        match (parts.next(), parts.next()) {
            (Some(Ok(r)), Some(Ok(us))) => Ok((r, Duration::from_micros(us))),
            _ => bail!("the sandbox answered {line:?}"),
        }
    }

    fn stop(mut self) -> Result<()> {
        drop(self.child.stdin.take());
        self.child.wait()?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Node's peak memory, sampled.

/// The child process of `parent` other than `exclude`, if any.
fn child_of(parent: u32, exclude: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == exclude || pid == parent {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

/// A thread following the run's node process: its `VmHWM` until it exits.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(u64, Duration)>,
}

impl Sampler {
    fn start(exclude: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let me = std::process::id();
            let mut watched: Option<u32> = None;
            let mut done = false;
            let mut peak = 0;
            while !stopping.load(Ordering::Relaxed) {
                if !done {
                    if watched.is_none() {
                        watched = child_of(me, exclude);
                    }
                    if let Some(pid) = watched {
                        match pid_status_kib(pid, "VmHWM") {
                            Some(kib) => peak = peak.max(kib),
                            // Exited (a zombie has no VmHWM) or reaped.
                            None => done = true,
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (peak, usage::thread())
        });
        Self { stop, handle }
    }

    /// Node's peak RSS in KiB, and the sampler's own CPU.
    fn finish(self) -> (u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or((0, Duration::ZERO))
    }
}

// ---------------------------------------------------------------------------
// The runs.

/// One run's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RunFig {
    wall_ms: f64,
    /// Gleaner's CPU (this process, sampler taken out).
    own_ms: f64,
    /// node's CPU (reaped children).
    node_ms: f64,
    /// The sandbox's CPU for this run.
    provider_ms: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    peak_kib: u64,
    node_peak_kib: u64,
    requests: u64,
    created: u64,
    files: u64,
}

impl RunFig {
    fn mean(figs: &[RunFig]) -> RunFig {
        let n = figs.len().max(1) as f64;
        let avg_f = |f: fn(&RunFig) -> f64| figs.iter().map(f).sum::<f64>() / n;
        let avg_u =
            |f: fn(&RunFig) -> u64| (figs.iter().map(f).sum::<u64>() as f64 / n).round() as u64;
        RunFig {
            wall_ms: avg_f(|r| r.wall_ms),
            own_ms: avg_f(|r| r.own_ms),
            node_ms: avg_f(|r| r.node_ms),
            provider_ms: avg_f(|r| r.provider_ms),
            rss_before_kib: avg_u(|r| r.rss_before_kib),
            rss_after_kib: avg_u(|r| r.rss_after_kib),
            peak_kib: avg_u(|r| r.peak_kib),
            node_peak_kib: figs.iter().map(|r| r.node_peak_kib).max().unwrap_or(0),
            requests: avg_u(|r| r.requests),
            created: avg_u(|r| r.created),
            files: avg_u(|r| r.files),
        }
    }

    fn row(&self, label: &str) {
        println!(
            "  {label:<14} {:>8.0} {:>9.1} {:>8.1} {:>8.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>5} {:>4}/{:<3}",
            self.wall_ms,
            self.own_ms,
            self.node_ms,
            self.provider_ms,
            mib(self.rss_before_kib),
            mib(self.rss_after_kib),
            mib(self.peak_kib),
            mib(self.node_peak_kib),
            self.requests,
            self.created,
            self.files,
        );
    }
}

fn header() {
    println!(
        "  {:<14} {:>8} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>5} {:>8}",
        "run",
        "wall ms",
        "Gleaner",
        "node",
        "sandbox",
        "RSS0",
        "RSS1",
        "peak",
        "node pk",
        "reqs",
        "new/files"
    );
    println!(
        "  {:<14} {:>8} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7}",
        "", "", "CPU ms", "CPU ms", "CPU ms", "MiB", "MiB", "MiB", "MiB"
    );
}

/// What a phase of runs hands the parent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RunsFigures {
    first: RunFig,
    later: RunFig,
    later_own_min_ms: f64,
    later_own_max_ms: f64,
    node_max_rss_first_kib: u64,
    node_max_rss_all_kib: u64,
    runs: usize,
    /// How many `io.cozy.files` documents were added before the last runs.
    extra_files: usize,
    /// The mean of the runs after they were added.
    with_history: Option<RunFig>,
}

/// Commits `n` more `io.cozy.files` documents to the account, in a folder
/// the konnector does not use, keeping its state.
async fn add_history(env: &RunEnv, account: &Account, n: usize) -> Result<()> {
    let state = env
        .store
        .state(&account.id)
        .await
        .map_err(kerr)?
        .map(|s| s.state)
        .unwrap_or(serde_json::Value::Null);
    let docs = (0..n)
        .map(|i| {
            let name = format!("extra-{i:05}.pdf");
            let path = format!("Elsewhere/{name}");
            let data = serde_json::json!({
                "type": "file",
                "name": name,
                "path": path,
                "dir_id": "bench-elsewhere",
                "mime": "application/pdf",
                "size": 1000,
            });
            StagedDoc::from_value("io.cozy.files", path, None, &data)
        })
        .collect();
    env.store
        .commit_run(RunCommit {
            account_id: account.id.clone(),
            account_identifier: None,
            run_id: new_id(),
            konnector: account.konnector.clone(),
            docs,
            deletes: Vec::new(),
            state,
            finished_at: Utc::now(),
        })
        .await
        .map_err(kerr)?;
    Ok(())
}

/// A temporary installation: store, files, one account.
struct Home {
    _dir: tempfile::TempDir,
    data: PathBuf,
    env: RunEnv,
    store: SqliteStore,
}

impl Home {
    async fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().to_owned();
        let store = SqliteStore::open(&data.join("gleaner.db")).await?;
        let env = RunEnv {
            store: Arc::new(store.clone()),
            files: FileStore::open(&data.join("files")).map_err(kerr)?,
            retry: RetryPolicy::default(),
        };
        Ok(Self {
            _dir: dir,
            data,
            env,
            store,
        })
    }

    async fn account(
        &self,
        id: &str,
        manifest: &Manifest,
        fields: &[(&str, &str)],
        endpoint: Option<String>,
    ) -> Result<Account> {
        let account = Account {
            id: id.to_owned(),
            konnector: manifest.slug.clone(),
            label: id.to_owned(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            // No vault: the secrets go to run_konnector directly.
            sealed_secrets: Vec::new(),
            endpoint,
            created_at: Utc::now(),
            folder: Account::default_folder(&manifest.name, id),
        };
        self.store.put_account(&account).await?;
        Ok(account)
    }

    fn install(&self, build: &Path) -> Result<Installed> {
        Ok(install(
            build,
            &self.data,
            &InstallOptions {
                allow_hosts: Some(vec!["127.0.0.1".to_owned()]),
                timeout_secs: None,
            },
        )?)
    }

    fn scratch(&self) -> PathBuf {
        self.data.join("konnectors").join(".runs")
    }
}

/// One measured run.
async fn measured_run(
    konnector: &dyn Konnector,
    account: &Account,
    secrets: &BTreeMap<String, Secret>,
    env: &RunEnv,
    provider: &mut Provider,
) -> Result<(RunReport, RunFig)> {
    let (requests0, provider0) = provider.counters()?;
    reset_peak();
    let rss_before = status_kib("VmRSS").unwrap_or(0);
    let sampler = Sampler::start(provider.pid());
    let own0 = usage::own();
    let node0 = usage::children();
    let t = Instant::now();
    let result = run_konnector(
        konnector,
        account,
        secrets.clone(),
        env,
        RunOptions::default(),
    )
    .await;
    let wall = t.elapsed();
    let own1 = usage::own();
    let node1 = usage::children();
    let (node_peak, sampler_cpu) = sampler.finish();
    let peak = status_kib("VmHWM").unwrap_or(0);
    let rss_after = status_kib("VmRSS").unwrap_or(0);
    let report = result.map_err(kerr)?;
    let (requests1, provider1) = provider.counters()?;
    let fig = RunFig {
        wall_ms: ms(wall),
        own_ms: ms((own1.saturating_sub(own0)).saturating_sub(sampler_cpu)),
        node_ms: ms(node1.saturating_sub(node0)),
        provider_ms: ms(provider1.saturating_sub(provider0)),
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        peak_kib: peak,
        node_peak_kib: node_peak,
        requests: requests1.saturating_sub(requests0),
        created: report.created(),
        files: report.files_downloaded,
    };
    Ok((report, fig))
}

/// `n` runs of `konnector` for `account`, printed and summed up.
async fn run_series(
    what: &str,
    konnector: &dyn Konnector,
    account: &Account,
    secrets: &BTreeMap<String, Secret>,
    env: &RunEnv,
    provider: &mut Provider,
    n: usize,
) -> Result<RunsFigures> {
    println!("\n## {what}: {n} runs against the Free Mobile sandbox (another process)");
    header();
    let mut figs = Vec::new();
    let mut node_max_rss_first = 0;
    for i in 0..n {
        let (report, fig) = measured_run(konnector, account, secrets, env, provider).await?;
        if i == 0 {
            ensure!(
                report.files_downloaded == 20 && report.created() >= 20,
                "the first run imported {} documents and {} files, not 20 bills and 20 PDFs",
                report.created(),
                report.files_downloaded
            );
            node_max_rss_first = usage::children_max_rss_kib();
        } else {
            ensure!(
                report.created() == 0 && report.files_downloaded == 0,
                "run {} imported {} documents and {} files",
                i + 1,
                report.created(),
                report.files_downloaded
            );
        }
        fig.row(&format!("{}", i + 1));
        figs.push(fig);
    }
    let later = &figs[1..];
    let extra = extra_files();
    let with_history = if extra > 0 {
        add_history(env, account, extra).await?;
        let mut history = Vec::new();
        for i in 0..HISTORY_RUNS {
            let (report, fig) = measured_run(konnector, account, secrets, env, provider).await?;
            ensure!(
                report.created() == 0 && report.files_downloaded == 0,
                "a run after the history imported {} documents",
                report.created()
            );
            fig.row(&format!("+{extra} files {}", i + 1));
            history.push(fig);
        }
        Some(RunFig::mean(&history))
    } else {
        None
    };
    let figures = RunsFigures {
        first: figs[0].clone(),
        later: RunFig::mean(later),
        later_own_min_ms: later.iter().map(|f| f.own_ms).fold(f64::INFINITY, f64::min),
        later_own_max_ms: later.iter().map(|f| f.own_ms).fold(0.0, f64::max),
        node_max_rss_first_kib: node_max_rss_first,
        node_max_rss_all_kib: usage::children_max_rss_kib(),
        runs: n,
        extra_files: extra,
        with_history,
    };
    println!("  {}", "-".repeat(100));
    figures.first.row("first");
    figures.later.row(&format!("mean 2..{n}"));
    if let Some(h) = &figures.with_history {
        h.row(&format!("mean +{extra}"));
    }
    println!(
        "  Gleaner CPU of runs 2..{n}: min {:.1} ms, max {:.1} ms",
        figures.later_own_min_ms, figures.later_own_max_ms
    );
    if figures.node_max_rss_all_kib > 0 {
        println!(
            "  node peak RSS from ru_maxrss (RUSAGE_CHILDREN): first run {:.1} MiB, all runs {:.1} MiB",
            mib(figures.node_max_rss_first_kib),
            mib(figures.node_max_rss_all_kib)
        );
    }
    Ok(figures)
}

fn print_figures<T: Serialize>(figures: &T) -> Result<()> {
    println!("{FIGURES}{}", serde_json::to_string(figures)?);
    Ok(())
}

fn phase_cozy() -> Result<()> {
    let build = bundle().map_err(|e| anyhow!(e))?;
    let n = runs();
    let mut provider = Provider::start()?;
    let rt = runtime()?;
    let figures = rt.block_on(async {
        let home = Home::new().await?;
        let installed = home.install(&build)?;
        let konnector = NodeKonnector::new(installed, home.scratch()).map_err(kerr)?;
        let account = home
            .account(
                "bench-cozy",
                konnector.manifest(),
                &[("login", LOGIN), ("baseUrl", &provider.url)],
                None,
            )
            .await?;
        let secrets = BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]);
        run_series(
            "Cozy Node konnector (freemobile-node, cozy-konnector-libs 4.x)",
            &konnector,
            &account,
            &secrets,
            &home.env,
            &mut provider,
            n,
        )
        .await
    });
    provider.stop()?;
    print_figures(&figures?)
}

fn phase_builtin() -> Result<()> {
    let n = runs();
    let mut provider = Provider::start()?;
    let rt = runtime()?;
    let figures = rt.block_on(async {
        let home = Home::new().await?;
        let registry = Registry::builtin().map_err(kerr)?;
        let konnector = Arc::clone(&registry.get("free-mobile").map_err(kerr)?.konnector);
        let account = home
            .account(
                "bench-builtin",
                konnector.manifest(),
                &[("login", LOGIN)],
                Some(provider.url.clone()),
            )
            .await?;
        let secrets = BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]);
        run_series(
            "Built-in Rust konnector (free-mobile)",
            konnector.as_ref(),
            &account,
            &secrets,
            &home.env,
            &mut provider,
            n,
        )
        .await
    });
    provider.stop()?;
    print_figures(&figures?)
}

// ---------------------------------------------------------------------------
// The pieces.

/// A piece's figures: per iteration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PieceFig {
    iterations: u32,
    wall_ms: f64,
    own_ms: f64,
    node_ms: f64,
}

impl PieceFig {
    fn row(&self, label: &str) {
        println!(
            "  {label:<58} {:>9.3} {:>9.3} {:>9.2}   x{}",
            self.wall_ms, self.own_ms, self.node_ms, self.iterations
        );
    }
}

/// Times `iterations` of `f`, per iteration.
async fn piece<F, Fut>(iterations: u32, mut f: F) -> Result<PieceFig>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let own0 = usage::own();
    let node0 = usage::children();
    let t = Instant::now();
    for _ in 0..iterations {
        f().await?;
    }
    let wall = t.elapsed();
    let own = usage::own().saturating_sub(own0);
    let node = usage::children().saturating_sub(node0);
    let per = f64::from(iterations);
    Ok(PieceFig {
        iterations,
        wall_ms: ms(wall) / per,
        own_ms: ms(own) / per,
        node_ms: ms(node) / per,
    })
}

/// A konnector that does nothing, or that times the stack API server and
/// the proxy (the stack needs the run's stored documents, which only a run
/// has).
struct BenchKonnector {
    manifest: Manifest,
    servers: bool,
    result: Mutex<Option<(PieceFig, PieceFig)>>,
}

#[async_trait]
impl Konnector for BenchKonnector {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> gleaner_framework::Result<()> {
        if !self.servers {
            return Ok(());
        }
        let uploads = tempfile::tempdir().map_err(|e| {
            KonnectorError::new(gleaner_framework::ErrorCode::UnknownError, e.to_string())
        })?;
        let state = ctx.state().clone();
        let stored = ctx.stored_documents();
        let files_root = ctx.file_store().root().to_owned();
        let folder = ctx.account_folder().to_owned();
        let account_id = ctx.account_id().to_owned();
        let slug = self.manifest.slug.clone();
        let uploads_path = uploads.path().to_owned();
        let stack = piece(FAST, || {
            let config = StackConfig {
                slug: slug.clone(),
                account_id: account_id.clone(),
                auth: serde_json::Map::new(),
                data: state.clone(),
                doctypes: vec!["io.cozy.bills".to_owned(), "io.cozy.files".to_owned()],
                stored: stored.clone(),
                files_root: files_root.clone(),
                account_folder: folder.clone(),
                uploads: uploads_path.clone(),
            };
            async move {
                let stack = Stack::start(config, "t".repeat(64)).await.map_err(kerr)?;
                stack.stop();
                drop(stack);
                Ok(())
            }
        })
        .await;
        let proxy = piece(FAST, || async {
            let proxy = EgressProxy::start(ProxyPolicy {
                allow: Some(vec!["127.0.0.1".to_owned()]),
                always_allow: Vec::new(),
            })
            .await?;
            proxy.shutdown().await;
            Ok(())
        })
        .await;
        let fail = |e: anyhow::Error| {
            KonnectorError::new(gleaner_framework::ErrorCode::UnknownError, e.to_string())
        };
        let both = (stack.map_err(fail)?, proxy.map_err(fail)?);
        if let Ok(mut r) = self.result.lock() {
            *r = Some(both);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PiecesFigures {
    /// The process's first run of a konnector doing nothing.
    empty_rust_first: PieceFig,
    empty_rust: PieceFig,
    empty_node: PieceFig,
    empty_node_peak_kib: u64,
    stack: PieceFig,
    proxy: PieceFig,
    sha256: PieceFig,
    bundle_bytes: u64,
    node_process: PieceFig,
    node_e: PieceFig,
    direct_request: PieceFig,
    proxied_request: PieceFig,
    proxied_seen: u64,
}

fn phase_pieces() -> Result<()> {
    let bundle_dir = bundle().map_err(|e| anyhow!(e))?;
    let mut provider = Provider::start()?;
    let url = format!("{}/account/", provider.url);
    let rt = runtime()?;
    let figures = rt.block_on(async {
        let home = Home::new().await?;
        // An installed Node konnector whose index.js is empty.
        let build = tempfile::tempdir()?;
        std::fs::write(build.path().join("index.js"), "")?;
        std::fs::write(
            build.path().join("manifest.konnector"),
            r#"{"slug": "empty-node", "name": "Empty", "version": "1.0.0", "language": "node",
               "permissions": {"bills": {"type": "io.cozy.bills"}}}"#,
        )?;
        let installed = home.install(build.path())?;
        let script = installed.dir.join("index.js");
        let node_konnector = NodeKonnector::new(installed, home.scratch()).map_err(kerr)?;
        let manifest = node_konnector.manifest().clone();
        let account = home.account("bench-empty", &manifest, &[], None).await?;
        let secrets = BTreeMap::new();
        let env = home.env.clone();
        let nothing = BenchKonnector {
            manifest: manifest.clone(),
            servers: false,
            result: Mutex::new(None),
        };
        let empty_rust_first = piece(1, || async {
            run_konnector(
                &nothing,
                &account,
                secrets.clone(),
                &env,
                RunOptions::default(),
            )
            .await
            .map_err(kerr)?;
            Ok(())
        })
        .await?;
        let empty_rust = piece(SPAWNS, || async {
            run_konnector(
                &nothing,
                &account,
                secrets.clone(),
                &env,
                RunOptions::default(),
            )
            .await
            .map_err(kerr)?;
            Ok(())
        })
        .await?;
        let sampler = Sampler::start(provider.pid());
        let mut empty_node = piece(SPAWNS, || async {
            run_konnector(
                &node_konnector,
                &account,
                secrets.clone(),
                &env,
                RunOptions::default(),
            )
            .await
            .map_err(kerr)?;
            Ok(())
        })
        .await?;
        let (empty_node_peak, sampler_cpu) = sampler.finish();
        empty_node.own_ms -= ms(sampler_cpu) / f64::from(SPAWNS);
        let servers = BenchKonnector {
            manifest: manifest.clone(),
            servers: true,
            result: Mutex::new(None),
        };
        run_konnector(
            &servers,
            &account,
            secrets.clone(),
            &env,
            RunOptions::default(),
        )
        .await
        .map_err(kerr)?;
        let (stack, proxy) = servers
            .result
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .context("the servers were not timed")?;
        // Every run checks the installed index.js against its recorded
        // SHA-256; the test konnector's bundle is one 8 MiB file.
        let bundle_script = bundle_dir.join("index.js");
        let bundle_bytes = std::fs::metadata(&bundle_script)?.len();
        let sha256 = piece(SPAWNS, || async {
            sha256_of(&bundle_script)?;
            Ok(())
        })
        .await?;
        let workdir = tempfile::tempdir()?;
        let node_process = piece(SPAWNS, || async {
            let mut process = NodeProcess::start(&Launch {
                node: node_binary(),
                script: script.clone(),
                workdir: workdir.path().to_owned(),
                env: Vec::new(),
            })
            .map_err(kerr)?;
            let mut output = process.take_output().context("no output")?;
            while output.recv().await.is_some() {}
            let status = process.wait().await?;
            ensure!(status.success(), "node exited with {status}");
            Ok(())
        })
        .await?;
        let node_e = piece(SPAWNS, || async {
            // The environment cleared as for a konnector: this machine's
            // NODE_EXTRA_CA_CERTS alone makes node parse every system root
            // at start (about 70 ms more).
            let mut command = tokio::process::Command::new(node_binary());
            command.args(["-e", ""]).env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                command.env("PATH", path);
            }
            let status = command.status().await?;
            ensure!(status.success(), "node -e '' exited with {status}");
            Ok(())
        })
        .await?;
        // The proxy's cost per forwarded request: the same plain-HTTP GETs
        // (keep-alive) directly, then through the proxy; the difference is
        // the proxy's.
        let direct_client = reqwest::Client::builder().no_proxy().build()?;
        let forwarder = EgressProxy::start(ProxyPolicy {
            allow: Some(vec!["127.0.0.1".to_owned()]),
            always_allow: Vec::new(),
        })
        .await?;
        let proxied_client = reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(forwarder.url())?)
            .build()?;
        let get = |client: &reqwest::Client| {
            let request = client.get(&url);
            async move {
                let body = request.send().await?.bytes().await?;
                ensure!(!body.is_empty(), "empty page");
                Ok(())
            }
        };
        // Warm both connections up.
        get(&direct_client).await?;
        get(&proxied_client).await?;
        let direct_request = piece(REQUESTS, || get(&direct_client)).await?;
        let proxied_request = piece(REQUESTS, || get(&proxied_client)).await?;
        let proxied_seen = forwarder
            .contacts()
            .iter()
            .map(|c| u64::from(c.requests))
            .sum::<u64>();
        forwarder.shutdown().await;
        anyhow::Ok(PiecesFigures {
            empty_rust_first,
            empty_rust,
            empty_node,
            empty_node_peak_kib: empty_node_peak,
            stack,
            proxy,
            sha256,
            bundle_bytes,
            node_process,
            node_e,
            direct_request,
            proxied_request,
            proxied_seen,
        })
    });
    let (requests, _) = provider.counters()?;
    provider.stop()?;
    let f = figures?;
    println!("\n## The pieces alone (per iteration)");
    println!(
        "  {:<58} {:>9} {:>9} {:>9}",
        "", "wall ms", "Gleaner", "node"
    );
    println!("  {:<58} {:>9} {:>9} {:>9}", "", "", "CPU ms", "CPU ms");
    f.empty_rust_first
        .row("run_konnector, a konnector doing nothing: process's 1st");
    f.empty_rust
        .row("run_konnector, a konnector doing nothing: later");
    f.empty_node
        .row("run_konnector, Node konnector with an empty index.js");
    f.stack.row("Stack::start + stop (stack API server)");
    f.proxy.row("EgressProxy::start + shutdown");
    f.sha256.row(&format!(
        "SHA-256 of the bundle's index.js ({:.1} MiB)",
        mib(f.bundle_bytes / 1024)
    ));
    f.node_process
        .row("NodeProcess: spawn empty script, read output, wait");
    f.node_e
        .row("node -e '' (tokio Command, empty env, spawn to exit)");
    f.direct_request.row("GET /account/ on the sandbox, direct");
    f.proxied_request
        .row("GET /account/ on the sandbox, through the proxy");
    println!(
        "  node peak RSS with an empty index.js: {:.1} MiB; proxy counted {} requests; the sandbox served {requests}",
        mib(f.empty_node_peak_kib),
        f.proxied_seen
    );
    print_figures(&f)
}

// ---------------------------------------------------------------------------
// The parent: phases in child processes, then the summary.

fn run_phase(exe: &Path, phase: &str) -> Result<serde_json::Value> {
    let out = Command::new(exe)
        .arg(phase)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run the {phase} phase"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = None;
    for line in text.lines() {
        match line.strip_prefix(FIGURES) {
            Some(json) => figures = Some(serde_json::from_str(json)?),
            None => println!("{line}"),
        }
    }
    if !out.status.success() {
        bail!("the {phase} phase failed");
    }
    figures.with_context(|| format!("the {phase} phase printed no figures"))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    match args.next().as_deref() {
        Some("sandbox") => return serve_sandbox(),
        Some("cozy") => return phase_cozy(),
        Some("builtin") => return phase_builtin(),
        Some("pieces") => return phase_pieces(),
        _ => {}
    }
    if let Err(why) = bundle() {
        println!("skipped: {why}");
        return Ok(());
    }
    let node_version = Command::new(node_binary())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("Gleaner's overhead per Cozy Node konnector run");
    println!(
        "machine: {} CPUs, load average {}, node {node_version}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        if cfg!(debug_assertions) {
            "debug build: figures not meaningful"
        } else {
            "optimized build"
        }
    );
    println!(
        "columns: Gleaner CPU = getrusage(RUSAGE_SELF) delta; node CPU = RUSAGE_CHILDREN delta; \
         sandbox CPU = the provider's process; RSS0/RSS1 = Gleaner's VmRSS before/after; \
         peak = Gleaner's VmHWM during the run; node pk = node's VmHWM"
    );
    let exe = std::env::current_exe()?;
    let cozy: RunsFigures = serde_json::from_value(run_phase(&exe, "cozy")?)?;
    let builtin: RunsFigures = serde_json::from_value(run_phase(&exe, "builtin")?)?;
    let pieces: PiecesFigures = serde_json::from_value(run_phase(&exe, "pieces")?)?;
    summary(&cozy, &builtin, &pieces);
    Ok(())
}

fn summary(cozy: &RunsFigures, builtin: &RunsFigures, p: &PiecesFigures) {
    let n = cozy.runs;
    println!("\n## Summary (CPU ms and MiB per run)");
    println!(
        "  {:<40} {:>8} {:>9} {:>8} {:>10} {:>10}",
        "", "wall ms", "Gleaner", "node", "Gleaner", "node"
    );
    println!(
        "  {:<40} {:>8} {:>9} {:>8} {:>10} {:>10}",
        "", "", "CPU ms", "CPU ms", "peak-RSS0", "peak MiB"
    );
    let line = |label: &str, f: &RunFig| {
        println!(
            "  {label:<40} {:>8.0} {:>9.1} {:>8.1} {:>+10.1} {:>10.1}",
            f.wall_ms,
            f.own_ms,
            f.node_ms,
            mib(f.peak_kib) - mib(f.rss_before_kib),
            mib(f.node_peak_kib)
        );
    };
    line("Cozy Node, first run (20 bills, 20 PDFs)", &cozy.first);
    line(
        &format!("Cozy Node, runs 2..{n} (nothing new)"),
        &cozy.later,
    );
    if let Some(h) = &cozy.with_history {
        line(
            &format!("Cozy Node, +{} files in the account", cozy.extra_files),
            h,
        );
    }
    line("built-in Rust, first run", &builtin.first);
    line(&format!("built-in Rust, runs 2..{n}"), &builtin.later);
    if let Some(h) = &builtin.with_history {
        line(
            &format!(
                "built-in Rust, +{} files in the account",
                builtin.extra_files
            ),
            h,
        );
    }
    let fixed_host = p.empty_node.own_ms - p.empty_rust.own_ms;
    let per_request = p.proxied_request.own_ms - p.direct_request.own_ms;
    println!(
        "\n  fixed cost of any run (framework, konnector doing nothing): {:.2} ms CPU, {:.1} ms wall",
        p.empty_rust.own_ms, p.empty_rust.wall_ms
    );
    println!(
        "  fixed cost of the Cozy host (empty index.js minus the above): {fixed_host:.2} ms CPU \
         (stack {:.3}, proxy {:.3}, spawn+wait {:.2} of it); node's start: {:.1} ms CPU, {:.1} MiB",
        p.stack.own_ms,
        p.proxy.own_ms,
        p.node_process.own_ms,
        p.empty_node.node_ms,
        mib(p.empty_node_peak_kib)
    );
    println!(
        "  SHA-256 check of the installed index.js ({:.1} MiB), every run: {:.1} ms CPU",
        mib(p.bundle_bytes / 1024),
        p.sha256.own_ms
    );
    println!("  the proxy's CPU per forwarded plain-HTTP request: {per_request:.3} ms");
    // What is left of a run with nothing new: the stack API calls, the
    // output lines and the (empty) staging.
    let rest = |f: &RunFig| {
        f.own_ms - p.empty_node.own_ms - p.sha256.own_ms - per_request * f.requests as f64
    };
    println!(
        "  Gleaner's CPU left for the stack API (and output, staging, commit): \
         first run {:.1} ms, runs 2..{n} {:.1} ms",
        rest(&cozy.first),
        rest(&cozy.later)
    );
    println!("\nIn a paragraph:");
    println!(
        "  On this machine a run of the Cozy test konnector (cozy-konnector-libs 4.x) costs \
         Gleaner {:.0} ms of CPU when it imports 20 bills and 20 PDFs and {:.0} ms when there is \
         nothing new (stack API, egress proxy, spawn, staging and commit together), and its peak \
         RSS rises by {:.1} / {:.1} MiB. The node process itself costs {:.0} / {:.0} ms of CPU and \
         peaks at {:.0} MiB: node is {:.0}x / {:.0}x Gleaner's share in CPU. The built-in Rust \
         konnector does the same import in {:.0} ms of CPU ({:.0} ms with nothing new), all of it \
         in Gleaner, peak +{:.1} MiB; a Node run costs {:.0}x / {:.0}x that in total CPU. \
         Of Gleaner's share, {fixed_host:.1} ms is the Cozy host's fixed cost per run, {:.1} ms \
         the SHA-256 check of the bundle, about {per_request:.2} ms each request the konnector \
         sends through the proxy, and the rest ({:.0} ms with nothing new) serving its stack API \
         calls.",
        cozy.first.own_ms,
        cozy.later.own_ms,
        mib(cozy.first.peak_kib) - mib(cozy.first.rss_before_kib),
        mib(cozy.later.peak_kib) - mib(cozy.later.rss_before_kib),
        cozy.first.node_ms,
        cozy.later.node_ms,
        mib(cozy.first.node_peak_kib.max(cozy.later.node_peak_kib)),
        cozy.first.node_ms / cozy.first.own_ms.max(0.001),
        cozy.later.node_ms / cozy.later.own_ms.max(0.001),
        builtin.first.own_ms,
        builtin.later.own_ms,
        mib(builtin.first.peak_kib) - mib(builtin.first.rss_before_kib),
        (cozy.first.own_ms + cozy.first.node_ms) / builtin.first.own_ms.max(0.001),
        (cozy.later.own_ms + cozy.later.node_ms) / builtin.later.own_ms.max(0.001),
        p.sha256.own_ms,
        rest(&cozy.later),
    );
    if let (Some(h), Some(b)) = (&cozy.with_history, &builtin.with_history) {
        println!(
            "  With {} more files in the account, a run with nothing new costs Gleaner {:.0} ms \
             with the Node konnector (was {:.0}) and {:.0} ms with the built-in one (was {:.0}).",
            cozy.extra_files, h.own_ms, cozy.later.own_ms, b.own_ms, builtin.later.own_ms
        );
    }
}
