//! Web interface benchmark: `gleaner serve` under 200 concurrent clients.
//!
//! Run with `cargo bench --bench web`. A plain program (`harness = false`)
//! that prints its figures and ends with a Markdown table;
//! `docs/performance.md` explains them.
//!
//! - A data directory with one Free Mobile account (added with the CLI, so
//!   its secrets are sealed as usual) and 10,000 bills of that account,
//!   committed with one `commit_run` straight through the framework store.
//! - `gleaner serve --no-daemon` (the binary built with this bench) on it,
//!   logged in with its one-time link.
//! - For each page: `GLEANER_BENCH_WEB_CLIENTS` clients (default 200),
//!   each with its own connection and the session cookie, request the page
//!   in a loop for `GLEANER_BENCH_WEB_SECONDS` (default 10); latency of
//!   each whole response (body read), p50 and p99, requests per second.
//! - The server's peak RSS: `VmHWM` of `/proc/<pid>/status`, after each
//!   page's run.
//!
//! The pages: `GLEANER_BENCH_WEB_PATHS` (comma-separated, `{account}` is
//! the account's id), default `/accounts/{account}`,
//! `/documents/io.cozy.bills`, `/documents`. A page that answers 404 (the
//! account page before it exists) is reported as skipped.
//!
//! `GLEANER_BENCH_SCALE` (a float, default 1.0) scales the bill count.
//! The clients run on the same machine as the server: on a small machine
//! they take part of its CPU, and the figures are a floor.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{TimeDelta, TimeZone, Utc};
use gleaner_framework::doctypes::{Bill, BillType, Doctype};
use gleaner_framework::filters::Currency;
use gleaner_framework::store::{AccountStore, DocStore, RunCommit, SqliteStore, StagedDoc};
use rust_decimal::Decimal;

/// Bills at scale 1.
const BILLS: f64 = 10_000.0;
/// Days the bill dates are spread over (20 years).
const DATE_SPAN_DAYS: usize = 7_300;

/// A number from the environment, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`th bill: one account, three contracts, a refund every 25th.
fn bill(i: usize) -> Bill {
    let day = i % DATE_SPAN_DAYS;
    let contract = i / DATE_SPAN_DAYS;
    let date = Utc.with_ymd_and_hms(2006, 1, 1, 0, 0, 0).unwrap() + TimeDelta::days(day as i64);
    let amount = Decimal::new(500 + ((i as i64 * 7_919) % 25_000), 2);
    let mut b = Bill::new("Free Mobile", date, amount, Currency::EUR);
    b.bill_type = Some(BillType::Phone);
    b.contract_id = Some(format!("06123456{contract:02}"));
    b.contract_label = Some(format!("line {contract}"));
    b.vendor_ref = Some(format!("INV-{i:08}"));
    b.filename = Some(format!("{}_freemobile_{i}.pdf", date.format("%Y%m")));
    if i.is_multiple_of(25) {
        b.is_refund = Some(true);
    }
    b
}

/// `gleaner ARGS` on `home`; fails with its output if it fails.
fn gleaner(home: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(args)
        .env("GLEANER_HOME", home)
        .env_remove("GLEANER_PASSPHRASE")
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "gleaner {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One account with `n` bills; returns the account's id.
async fn fill(home: &Path, n: usize) -> Result<String> {
    gleaner(
        home,
        &[
            "accounts",
            "add",
            "free-mobile",
            "--field",
            "login=12345678",
            "--field",
            "password=bench-password",
            "--label",
            "bench",
            "--endpoint",
            "http://127.0.0.1:9",
        ],
    )?;
    let store = SqliteStore::open(&home.join("gleaner.db")).await?;
    let account = store
        .list_accounts()
        .await?
        .into_iter()
        .next()
        .context("the account was not added")?;
    let docs = (0..n)
        .map(|i| {
            let b = bill(i);
            StagedDoc::from_value(
                Bill::DOCTYPE,
                b.dedup_key(),
                None,
                &serde_json::to_value(&b).unwrap(),
            )
        })
        .collect();
    let started = Instant::now();
    let counts = store
        .commit_run(RunCommit {
            account_id: account.id.clone(),
            account_identifier: Some("12345678".into()),
            run_id: "bench-fill".into(),
            konnector: "free-mobile".into(),
            docs,
            deletes: vec![],
            state: serde_json::json!({}),
            finished_at: Utc::now(),
        })
        .await?;
    let created = counts.get(Bill::DOCTYPE).map_or(0, |c| c.created);
    println!(
        "store: {created} bills committed in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    store.pool().close().await;
    Ok(account.id)
}

/// A running `gleaner serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
    login_link: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gleaner serve --no-daemon` on `home`, once it printed its login link.
fn serve(home: &Path) -> Result<Server> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(["serve", "--no-daemon", "--listen", "127.0.0.1:0"])
        .env("GLEANER_HOME", home)
        .env_remove("GLEANER_PASSPHRASE")
        // Errors only: under load sqlx warns of every slow pool acquire.
        .env("GLEANER_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut login_link = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(at) = line.find("http://")
            && line.contains("/login?token=")
        {
            login_link = Some(line[at..].trim().to_owned());
            break;
        }
    }
    // Keep reading (and dropping) what it prints, so it never blocks.
    std::thread::spawn(move || for _ in lines {});
    let Some(login_link) = login_link else {
        let _ = child.kill();
        bail!("gleaner serve printed no login link");
    };
    let base = login_link
        .split("/login?")
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(Server {
        child,
        base,
        login_link,
    })
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

/// The session cookie the one-time link sets.
async fn log_in(server: &Server) -> Result<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = client.get(&server.login_link).send().await?;
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("gleaner_session="))
        .context("the login link set no session cookie")?;
    Ok(cookie.split(';').next().unwrap_or_default().to_owned())
}

/// What one page's run measured.
struct Run {
    path: String,
    status: String,
    requests: usize,
    errors: usize,
    wall: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    bytes: usize,
    hwm_kib: Option<u64>,
}

/// `clients` clients, each with its own connection, request `url` until
/// `seconds` have passed.
async fn hammer(url: &str, cookie: &str, clients: usize, seconds: f64) -> Result<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse()?);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    let url = Arc::new(url.to_owned());
    for _ in 0..clients {
        let client = reqwest::Client::builder()
            .default_headers(headers.clone())
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(120))
            .build()?;
        let url = Arc::clone(&url);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut bytes = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.get(url.as_str()).send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) => {
                            bytes = b.len();
                            latencies.push(t.elapsed());
                        }
                        Err(_) => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (latencies, errors, bytes)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut bytes = 0;
    for t in tasks {
        let (l, e, b) = t.await?;
        latencies.extend(l);
        errors += e;
        bytes = bytes.max(b);
    }
    let wall = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Run {
        path: String::new(),
        status: "ok".into(),
        requests: latencies.len(),
        errors,
        wall,
        p50: at(0.50),
        p99: at(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        bytes,
        hwm_kib: None,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let scale: f64 = env_or("GLEANER_BENCH_SCALE", 1.0);
    let clients: usize = env_or("GLEANER_BENCH_WEB_CLIENTS", 200);
    let seconds: f64 = env_or("GLEANER_BENCH_WEB_SECONDS", 10.0);
    let paths = std::env::var("GLEANER_BENCH_WEB_PATHS")
        .unwrap_or_else(|_| "/accounts/{account},/documents/io.cozy.bills,/documents".to_owned());
    let bills = ((BILLS * scale).round() as usize).max(1);
    println!(
        "web bench: {bills} bills, {clients} clients, {seconds} s per page, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let home = tempfile::tempdir()?;
    let account = fill(home.path(), bills).await?;
    let server = serve(home.path())?;
    let pid = server.child.id();
    let cookie = log_in(&server).await?;
    println!(
        "server pid {pid}, idle RSS {}",
        mib(common::pid_status_kib(pid, "VmRSS"))
    );
    let probe = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut runs = Vec::new();
    for path in paths.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let path = path.replace("{account}", &account);
        let url = format!("{}{path}", server.base);
        // One request first: the page exists, and its first-time costs
        // (the store's caches) are out of the figures.
        let first = Instant::now();
        let r = probe
            .get(&url)
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            println!("{path}: skipped, it answers {status}");
            runs.push(Run {
                path,
                status: format!("skipped ({})", status.as_u16()),
                requests: 0,
                errors: 0,
                wall: Duration::ZERO,
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                max: Duration::ZERO,
                bytes: 0,
                hwm_kib: None,
            });
            continue;
        }
        println!(
            "{path}: one request alone {}, {} bytes",
            ms(first.elapsed()),
            body.len()
        );
        let mut run = hammer(&url, &cookie, clients, seconds).await?;
        run.path = path;
        run.hwm_kib = common::pid_status_kib(pid, "VmHWM");
        println!(
            "{}: {} requests in {:.1} s = {:.1}/s, p50 {}, p99 {}, max {}, {} errors, server peak RSS {}",
            run.path,
            run.requests,
            run.wall.as_secs_f64(),
            run.requests as f64 / run.wall.as_secs_f64(),
            ms(run.p50),
            ms(run.p99),
            ms(run.max),
            run.errors,
            mib(run.hwm_kib)
        );
        runs.push(run);
    }
    println!();
    println!(
        "| page | clients | requests/s | p50 | p99 | max | errors | page size | server peak RSS (VmHWM) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        if r.status != "ok" {
            println!("| `{}` | {clients} | {} | | | | | | |", r.path, r.status);
            continue;
        }
        println!(
            "| `{}` | {clients} | {:.1} | {} | {} | {} | {} | {:.0} KiB | {} |",
            r.path,
            r.requests as f64 / r.wall.as_secs_f64(),
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            r.errors,
            r.bytes as f64 / 1024.0,
            mib(r.hwm_kib)
        );
    }
    drop(server);
    Ok(())
}
