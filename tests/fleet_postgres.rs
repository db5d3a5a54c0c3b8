//! A fleet on one PostgreSQL: two `gleaner daemon` processes (two workers,
//! as on two machines sharing the data directory's files and vault key)
//! share 200 accounts of one provider. One is killed with SIGKILL while
//! runs are in flight; the other takes its jobs over after their lease.
//! Every job ends exactly once, the per-provider limit holds across both
//! (the sandbox counts its concurrent requests), no account runs twice at
//! once, and no document or file is duplicated.
//!
//! Skipped with one printed line when no PostgreSQL answers (required
//! under CI): see `gleaner_testing::postgres`.
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use gleaner_testing::postgres::TestDb;

const ACCOUNTS: usize = 200;
const PER_KONNECTOR: usize = 8;

fn gleaner(home: &Path, db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(args)
        .env("GLEANER_HOME", home)
        .env("GLEANER_DATABASE", db)
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(home: &Path, db: &str, args: &[&str]) -> String {
    let out = gleaner(home, db, args);
    assert!(
        out.status.success(),
        "gleaner {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A daemon process, killed on drop: a failing assertion never leaves it
/// running.
struct Daemon(Option<Child>);

impl Daemon {
    fn child(&self) -> &Child {
        self.0.as_ref().unwrap()
    }

    fn wait(mut self) -> std::process::ExitStatus {
        self.0.take().unwrap().wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A daemon whose log goes to `<home>/<worker>.log` (a pipe nobody reads
/// would fill and block it).
fn daemon(home: &Path, db: &str, worker: &str) -> Daemon {
    let log = std::fs::File::create(home.join(format!("{worker}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(["daemon", "--log-format", "json", "--worker-id", worker])
        .env("GLEANER_HOME", home)
        .env("GLEANER_DATABASE", db)
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(|c| Daemon(Some(c)))
        .unwrap()
}

fn jobs(home: &Path, db: &str) -> Vec<serde_json::Value> {
    ok(home, db, &["jobs", "--json", "--limit", "5000"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn count_state(jobs: &[serde_json::Value], state: &str) -> usize {
    jobs.iter().filter(|j| j["state"] == state).count()
}

async fn wait_until(what: &str, secs: u64, check: impl FnMut() -> bool) {
    assert!(
        wait_for(what, secs, check).await,
        "timed out waiting until {what}"
    );
}

async fn wait_for(what: &str, secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        // Each look is a `gleaner jobs` process: on two cores, looking
        // four times a second slowed the daemons it watches.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("timed out waiting until {what}");
    false
}

/// Adds the accounts and queues one manual run each, eight CLI processes
/// at a time (each one a client of the shared database).
fn add_accounts(home: &Path, db: &str, sandbox: &Sandbox) -> Vec<String> {
    let labels: Vec<String> = (0..ACCOUNTS).map(|i| format!("line-{i:03}")).collect();
    let endpoint = sandbox.base_url();
    std::thread::scope(|s| {
        for chunk in labels.chunks(ACCOUNTS.div_ceil(8)) {
            let endpoint = endpoint.clone();
            s.spawn(move || {
                for label in chunk {
                    ok(
                        home,
                        db,
                        &[
                            "accounts",
                            "add",
                            "free-mobile",
                            "--field",
                            &format!("login={LOGIN}"),
                            "--field",
                            &format!("password={PASSWORD}"),
                            "--label",
                            label,
                            "--endpoint",
                            &endpoint,
                        ],
                    );
                    ok(home, db, &["run", "--detach", label]);
                }
            });
        }
    });
    labels
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_share_a_queue_and_one_takes_over_the_others_jobs_after_sigkill() {
    let Some(db) = TestDb::create("fleet").await else {
        return;
    };
    let url = db.url.clone();
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("gleaner.toml"),
        format!(
            "[scheduler]\npoll_ms = 200\nconcurrency = 8\nper_konnector = {PER_KONNECTOR}\nlease_secs = 4\nheartbeat_secs = 1\n{}",
            // No nightly slot comes due mid-test: only the manual runs.
            gleaner_testing::window_away_from_now()
        ),
    )
    .unwrap();
    let labels = add_accounts(home.path(), &url, &sandbox);
    assert_eq!(
        count_state(&jobs(home.path(), &url), "queued"),
        ACCOUNTS,
        "one queued job per account"
    );

    let doomed = daemon(home.path(), &url, "worker-a");
    let survivor = daemon(home.path(), &url, "worker-b");
    // Both workers show in `gleaner status` once they beat.
    wait_until("both workers beat", 30, || {
        let status = ok(home.path(), &url, &["status"]);
        status.contains("worker-a") && status.contains("worker-b")
    })
    .await;
    // Kill worker-a while it holds runs.
    wait_until("worker-a holds runs", 60, || {
        jobs(home.path(), &url)
            .iter()
            .any(|j| j["state"] == "running" && j["lease_owner"] == "worker-a")
            && sandbox.pdf_downloads() >= 40
    })
    .await;
    kill_hard(doomed.child());
    let killed_at = chrono::Utc::now();
    let _ = doomed.wait();

    let mut last = String::new();
    let ended = wait_for("every job ended", 240, || {
        let j = jobs(home.path(), &url);
        let mut states = std::collections::BTreeMap::<String, usize>::new();
        for job in &j {
            *states.entry(job["state"].to_string()).or_default() += 1;
        }
        last = format!("{states:?}; {} PDFs served", sandbox.pdf_downloads());
        count_state(&j, "done") + count_state(&j, "errored") == ACCOUNTS
    })
    .await;
    assert!(ended, "not every job ended in time: {last}");
    let status = ok(home.path(), &url, &["status"]);
    signal(survivor.child(), "-TERM");
    let stopped = survivor.wait();
    let log = std::fs::read_to_string(home.path().join("worker-b.log")).unwrap();
    assert!(stopped.success(), "{log}");
    assert!(log.contains("\"daemon stopped\""), "{log}");
    for worker in ["worker-a", "worker-b"] {
        let log = std::fs::read_to_string(home.path().join(format!("{worker}.log"))).unwrap();
        assert!(!log.contains(PASSWORD), "{worker}: {log}");
    }

    let all = jobs(home.path(), &url);
    assert_eq!(all.len(), ACCOUNTS, "one job per account, none doubled");
    assert_eq!(count_state(&all, "done"), ACCOUNTS, "{all:?}");
    let recovered: Vec<&serde_json::Value> = all
        .iter()
        .filter(|j| j["recoveries"].as_u64() == Some(1))
        .collect();
    assert!(
        !recovered.is_empty(),
        "worker-a's runs in flight were taken back"
    );
    // A taken-back job ran again only on the survivor, after the kill: its
    // account never had two runs at once.
    for j in &recovered {
        if j["lease_owner"].is_string() {
            assert_eq!(j["lease_owner"], "worker-b", "{j}");
        }
        let started = j["started_at"].as_str().unwrap();
        let started: chrono::DateTime<chrono::Utc> = started.parse().unwrap();
        assert!(started > killed_at, "{j}");
    }
    let max = sandbox.max_concurrent_sessions();
    assert!(
        max <= PER_KONNECTOR,
        "{max} requests at once against one provider, limit {PER_KONNECTOR}"
    );
    // Each account's twenty bills and twenty files, once.
    let export = ok(home.path(), &url, &["export", "--doctype", "io.cozy.bills"]);
    let mut keys: Vec<String> = export
        .lines()
        .map(|l| {
            let b: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}|{}",
                b["doc"]["cozyMetadata"]["sourceAccount"], b["doc"]["filename"]
            )
        })
        .collect();
    assert_eq!(keys.len(), 20 * ACCOUNTS);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 20 * ACCOUNTS, "duplicate bills");
    assert_eq!(walk(&home.path().join("files")).len(), 20 * ACCOUNTS);
    for label in labels.iter().step_by(37) {
        assert!(status.contains(label.as_str()), "{status}");
    }
    drop(db);
}

fn kill_hard(child: &Child) {
    signal(child, "-KILL");
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
