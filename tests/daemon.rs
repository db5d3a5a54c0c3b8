//! `gleaner daemon` as a real process: it runs queued jobs, stops cleanly on
//! SIGTERM, and after a SIGKILL with runs in flight a restart ends every job
//! exactly once, with no duplicate document and no job left running.
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};

fn gleaner(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(args)
        .env("GLEANER_HOME", home)
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = gleaner(home, args);
    assert!(
        out.status.success(),
        "gleaner {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn daemon(home: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(["daemon", "--log-format", "json"])
        .env("GLEANER_HOME", home)
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn jobs(home: &Path) -> Vec<serde_json::Value> {
    ok(home, &["jobs", "--json", "--limit", "1000"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn setup(home: &Path, sandbox: &Sandbox, accounts: usize, toml: &str) -> Vec<String> {
    // Before the accounts: their nightly slots are planned in this window.
    let toml = format!("{toml}{}", gleaner_testing::window_away_from_now());
    std::fs::write(home.join("gleaner.toml"), toml).unwrap();
    let labels: Vec<String> = (0..accounts).map(|i| format!("line-{i:02}")).collect();
    for label in &labels {
        ok(
            home,
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
                &sandbox.base_url(),
            ],
        );
        ok(home, &["run", "--detach", label]);
    }
    labels
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn count_state(jobs: &[serde_json::Value], state: &str) -> usize {
    jobs.iter().filter(|j| j["state"] == state).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_runs_queued_jobs_and_stops_cleanly_on_sigterm() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let labels = setup(
        home.path(),
        &sandbox,
        3,
        "[scheduler]\npoll_ms = 50\nper_konnector = 2\n",
    );
    assert_eq!(count_state(&jobs(home.path()), "queued"), 3);
    let d = daemon(home.path());
    wait_until("3 jobs are done", || {
        count_state(&jobs(home.path()), "done") == 3
    })
    .await;
    signal(&d, "-TERM");
    let out = d.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("\"daemon stopped\""), "{log}");
    assert!(
        log.contains("\"job\""),
        "JSON logs carry the job span: {log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(sandbox.max_concurrent_sessions() <= 2);
    let status = ok(home.path(), &["status"]);
    for label in &labels {
        let line = status.lines().find(|l| l.contains(label.as_str())).unwrap();
        assert!(line.contains(" ok "), "{line}");
    }
}

/// SIGKILL with runs in flight, then a restart: every job ends exactly once
/// as done, none stays running or queued, and the store holds each
/// account's twenty bills once.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_killed_mid_runs_and_restarted_ends_every_job_exactly_once() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let n = 8;
    let labels = setup(
        home.path(),
        &sandbox,
        n,
        "[scheduler]\npoll_ms = 50\nconcurrency = 4\nper_konnector = 4\nlease_secs = 4\nheartbeat_secs = 1\n",
    );
    let first = daemon(home.path());
    // Kill once some runs have downloaded files but before all are done.
    wait_until("runs are in flight", || sandbox.pdf_downloads() >= 6).await;
    signal(&first, "-KILL");
    let _ = first.wait_with_output();
    let after_kill = jobs(home.path());
    // `gleaner jobs` settles the jobs of dead processes before listing
    // them: those in flight show as taken back (queued again, or done if
    // their run had committed).
    let in_flight = count_state(&after_kill, "running")
        + after_kill
            .iter()
            .filter(|j| j["recoveries"].as_u64() == Some(1))
            .count();
    let done_before = count_state(&after_kill, "done");
    assert!(
        in_flight > 0,
        "the kill should catch runs in flight: {after_kill:?}"
    );
    assert!(done_before < n);

    let second = daemon(home.path());
    wait_until("every job ended", || {
        let j = jobs(home.path());
        count_state(&j, "done") + count_state(&j, "errored") == n
    })
    .await;
    signal(&second, "-TERM");
    let out = second.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let all = jobs(home.path());
    assert_eq!(all.len(), n, "one job per account, none doubled: {all:?}");
    assert_eq!(count_state(&all, "done"), n, "{all:?}");
    assert!(
        all.iter().any(|j| j["recoveries"].as_u64() == Some(1)),
        "some job was taken back after the kill"
    );
    // Exactly once: each account has its 20 bills and 20 files, once.
    let export = ok(home.path(), &["export", "--doctype", "io.cozy.bills"]);
    let bills: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(bills.len(), 20 * n);
    let mut keys: Vec<String> = bills
        .iter()
        .map(|b| {
            format!(
                "{}|{}",
                b["doc"]["cozyMetadata"]["sourceAccount"], b["doc"]["filename"]
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 20 * n, "duplicate bills");
    let pdfs = walk(&home.path().join("files"));
    assert_eq!(pdfs.len(), 20 * n, "files: {}", pdfs.len());
    for label in &labels {
        let out = ok(home.path(), &["jobs", "--account", label, "--json"]);
        assert_eq!(out.lines().count(), 1, "{label}: {out}");
    }
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
