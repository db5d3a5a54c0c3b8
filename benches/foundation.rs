//! Foundation benchmark: the document store and page parsing.
//!
//! Run with `cargo bench --bench foundation`. It is a plain program
//! (`harness = false`) that prints its figures and ends with a Markdown
//! table; `docs/performance.md` explains what each figure means.
//!
//! - **Store, initial save**: 100,000 distinct valid bills, committed with one
//!   `commit_run` into an empty `SqliteStore`.
//! - **Store, re-save**: 10,000 bills of which 9,000 already exist
//!   (identical) and 1,000 are new, committed with one `commit_run`; once in
//!   this process, and once in a fresh child process on a copy of the store
//!   (so its memory figure is not inflated by what the first phase left in
//!   the allocator).
//! - **Parsing**: the Free Mobile home page fixture, parsed and mapped to
//!   bills 1,000 times.
//!
//! `GLEANER_BENCH_SCALE` (a float, default 1.0) scales every count, so
//! `GLEANER_BENCH_SCALE=0.01` is a quick smoke run.
//!
//! Peak memory is the process's `VmHWM` (Linux), reset before each phase by
//! writing `5` to `/proc/self/clear_refs`.

#![allow(clippy::unwrap_used)]

mod common;
use common::status_kib;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gleaner_framework::doctypes::{Bill, BillType, Doctype};
use gleaner_framework::filters::Currency;
use gleaner_framework::ids::new_id;
use gleaner_framework::scrape::HtmlPage;
use gleaner_framework::store::{Counts, DocStore, RunCommit, SqliteStore, StagedDoc};
use gleaner_konnectors::telco::free_mobile::{map, pages};
use rust_decimal::Decimal;

/// Bills in the initial save at scale 1.
const INITIAL_BILLS: f64 = 100_000.0;
/// Bills re-saved that already exist, at scale 1.
const RESAVE_EXISTING: f64 = 9_000.0;
/// Bills re-saved that are new, at scale 1.
const RESAVE_NEW: f64 = 1_000.0;
/// Parse iterations at scale 1.
const PARSE_PAGES: f64 = 1_000.0;
/// Invoices on the fixture page.
const FIXTURE_INVOICES: usize = 14;
/// Days the bill dates are spread over (20 years).
const DATE_SPAN_DAYS: usize = 7_300;
/// The URL the fixture page is parsed as coming from.
const HOME_URL: &str = "https://mobile.free.fr/account/";
/// The account every bill belongs to.
const ACCOUNT: &str = "bench-account";
const VENDORS: &[&str] = &[
    "Free Mobile",
    "Orange",
    "EDF",
    "Engie",
    "MAIF",
    "Bouygues Telecom",
    "SFR",
];
/// Set in the child process: the store to re-save into.
const CHILD_DB_ENV: &str = "GLEANER_BENCH_CHILD_DB";
/// Set in the child process: `initial,existing,new`.
const CHILD_COUNTS_ENV: &str = "GLEANER_BENCH_CHILD_COUNTS";
/// The prefix of the child's result line.
const CHILD_RESULT: &str = "CHILD-RESULT";

/// The counts of one benchmark run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    initial: usize,
    existing: usize,
    new: usize,
}

/// Memory bookkeeping for one phase, in KiB.
#[derive(Debug, Clone, Copy)]
struct Mem {
    /// RSS when the phase started.
    start_kib: Option<u64>,
    /// VmHWM at the end of the phase.
    peak_kib: Option<u64>,
}

/// One row of the final table.
struct Row {
    phase: &'static str,
    items: String,
    wall: Duration,
    throughput: String,
    mem: Mem,
}

/// Resets the peak-RSS mark before a phase and reads it after.
struct HwmMeter {
    reset_works: bool,
}

impl HwmMeter {
    /// Checks once whether the mark can be reset, and says so if not.
    fn new() -> Self {
        let reset_works = match std::fs::write("/proc/self/clear_refs", "5") {
            Ok(()) => true,
            Err(e) => {
                println!(
                    "note: cannot reset the peak-RSS mark (/proc/self/clear_refs: {e}); \
                     every in-process peak below is VmHWM since process start"
                );
                false
            }
        };
        if status_kib("VmHWM").is_none() {
            println!("note: /proc/self/status has no VmHWM (not Linux?); memory figures are n/a");
        }
        Self { reset_works }
    }

    /// Starts a phase: resets the mark and records the RSS now.
    fn start(&self) -> Mem {
        if self.reset_works {
            // Checked in `new`; a later failure only widens the window.
            let _ = std::fs::write("/proc/self/clear_refs", "5");
        }
        Mem {
            start_kib: status_kib("VmRSS"),
            peak_kib: None,
        }
    }

    /// Ends a phase: reads the mark.
    fn stop(&self, mut mem: Mem) -> Mem {
        mem.peak_kib = status_kib("VmHWM");
        mem
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

fn bytes_mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// A whole number with thousands separators.
fn thousands(n: f64) -> String {
    let s = format!("{n:.0}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn scaled(base: f64, scale: f64) -> usize {
    ((base * scale).round() as usize).max(1)
}

/// The first day of the bill dates.
fn base_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2006, 1, 1, 0, 0, 0).unwrap()
}

/// The `i`th bill. Distinct for distinct `i`: `i` is split into a day (the
/// date) and a contract, and the dedup key holds both.
fn bill(i: usize) -> Bill {
    let day = i % DATE_SPAN_DAYS;
    let contract = i / DATE_SPAN_DAYS;
    let vendor = VENDORS[contract % VENDORS.len()];
    let amount = Decimal::new(500 + ((i as i64 * 7_919) % 25_000), 2);
    let date = base_date() + TimeDelta::days(day as i64);
    let mut b = Bill::new(vendor, date, amount, Currency::EUR);
    b.bill_type = Some(BillType::Other);
    b.recurrence = Some("monthly".into());
    b.vendor_ref = Some(format!("INV-{i:08}"));
    b.contract_id = Some(format!("contract-{contract:04}"));
    b.contract_label = Some(format!("{vendor} contract {contract}"));
    b
}

/// Builds, validates and stages the bills `indices`; returns the docs and
/// their total JSON size in bytes.
fn stage(indices: impl Iterator<Item = usize>) -> Result<(Vec<StagedDoc>, usize)> {
    let mut docs = Vec::with_capacity(indices.size_hint().0);
    let mut json_bytes = 0;
    for i in indices {
        let b = bill(i);
        b.validate()
            .with_context(|| format!("bill {i} is invalid"))?;
        let data = serde_json::to_value(&b)?;
        let doc = StagedDoc::from_value(Bill::DOCTYPE, b.dedup_key(), None, &data);
        json_bytes += doc.json.len();
        docs.push(doc);
    }
    Ok((docs, json_bytes))
}

fn run_commit(docs: Vec<StagedDoc>, cursor: usize) -> RunCommit {
    RunCommit {
        account_id: ACCOUNT.to_owned(),
        account_identifier: Some("bench@example.invalid".to_owned()),
        run_id: new_id(),
        konnector: "bench".to_owned(),
        docs,
        deletes: Vec::new(),
        state: serde_json::json!({ "cursor": cursor }),
        finished_at: Utc::now(),
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Closes the store; closing the last connection checkpoints the WAL into
/// the database file.
async fn close(store: SqliteStore) {
    store.pool().close().await;
}

/// What one re-save did.
struct Resave {
    commit: Duration,
    total: Duration,
    counts: Counts,
}

/// Re-saves `existing` bills already in the store (spread over it) and
/// `new` bills that are not.
async fn resave(store: &SqliteStore, sizes: Sizes) -> Result<Resave> {
    let stride = (sizes.initial / sizes.existing).max(1);
    let indices = (0..sizes.existing)
        .map(|j| j * stride)
        .chain(sizes.initial..sizes.initial + sizes.new);
    let t0 = Instant::now();
    let (docs, _) = stage(indices)?;
    let t1 = Instant::now();
    let counts = store.commit_run(run_commit(docs, 2)).await?;
    let commit = t1.elapsed();
    let total = t0.elapsed();
    let counts = counts.get(Bill::DOCTYPE).copied().unwrap_or_default();
    assert_eq!(counts.created, sizes.new as u64, "re-save created");
    assert_eq!(counts.skipped, sizes.existing as u64, "re-save skipped");
    assert_eq!(counts.updated, 0, "re-save updated");
    Ok(Resave {
        commit,
        total,
        counts,
    })
}

/// The child process: opens the store copy, re-saves, prints one line.
fn child(db: &str, counts: &str) -> Result<()> {
    let n: Vec<usize> = counts
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad {CHILD_COUNTS_ENV}={counts:?}"))?;
    ensure!(n.len() == 3, "bad {CHILD_COUNTS_ENV}={counts:?}");
    let sizes = Sizes {
        initial: n[0],
        existing: n[1],
        new: n[2],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let r = runtime.block_on(async {
        let store = SqliteStore::open(Path::new(db)).await?;
        let r = resave(&store, sizes).await?;
        close(store).await;
        anyhow::Ok(r)
    })?;
    println!(
        "{CHILD_RESULT} {} {} {}",
        r.commit.as_secs_f64(),
        r.total.as_secs_f64(),
        status_kib("VmHWM").unwrap_or(0)
    );
    Ok(())
}

/// Runs the re-save in a fresh process on `db`; returns the commit time,
/// the end-to-end time and the child's whole-life peak RSS.
fn resave_in_child(db: &Path, sizes: Sizes) -> Result<(Duration, Duration, Option<u64>)> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .env(CHILD_DB_ENV, db)
        .env(
            CHILD_COUNTS_ENV,
            format!("{},{},{}", sizes.initial, sizes.existing, sizes.new),
        )
        .output()
        .context("cannot start the re-save child process")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the re-save child failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(CHILD_RESULT))
        .with_context(|| format!("the re-save child printed no result: {stdout}"))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad child result {line:?}"))?;
    ensure!(f.len() == 3, "bad child result {line:?}");
    let peak = (f[2] > 0.0).then_some(f[2] as u64);
    Ok((
        Duration::from_secs_f64(f[0]),
        Duration::from_secs_f64(f[1]),
        peak,
    ))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "n/a".to_owned())
}

fn main() -> Result<()> {
    if let (Ok(db), Ok(counts)) = (std::env::var(CHILD_DB_ENV), std::env::var(CHILD_COUNTS_ENV)) {
        return child(&db, &counts);
    }

    let scale: f64 = match std::env::var("GLEANER_BENCH_SCALE") {
        Ok(s) => s
            .trim()
            .parse()
            .with_context(|| format!("GLEANER_BENCH_SCALE={s:?} is not a number"))?,
        Err(_) => 1.0,
    };
    if !(scale.is_finite() && scale > 0.0) {
        bail!("GLEANER_BENCH_SCALE must be a positive number, not {scale}");
    }
    let initial = scaled(INITIAL_BILLS, scale);
    let sizes = Sizes {
        initial,
        existing: scaled(RESAVE_EXISTING, scale).min(initial),
        new: scaled(RESAVE_NEW, scale),
    };
    let n_resave = sizes.existing + sizes.new;
    let n_pages = scaled(PARSE_PAGES, scale);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!("Gleaner foundation benchmark");
    println!(
        "scale {scale} | {cores} cores | {} | load average {} | {}",
        cpu_model(),
        load_average(),
        if cfg!(debug_assertions) {
            "debug build: figures not meaningful"
        } else {
            "optimized build"
        }
    );
    println!();

    let meter = HwmMeter::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();

    // (a) Store.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("gleaner.db");
    let child_db = dir.path().join("gleaner-copy.db");
    let (stored, db_size) = runtime.block_on(async {
        // Initial save into an empty store.
        println!(
            "[store] initial save: {} distinct bills, one commit_run into an empty store",
            sizes.initial
        );
        let store = SqliteStore::open(&db).await?;
        let mem = meter.start();
        let t0 = Instant::now();
        let (docs, json_bytes) = stage(0..sizes.initial)?;
        let build = t0.elapsed();
        let t1 = Instant::now();
        let counts = store.commit_run(run_commit(docs, 1)).await?;
        let commit = t1.elapsed();
        let total = t0.elapsed();
        let mem = meter.stop(mem);
        let c = counts.get(Bill::DOCTYPE).copied().unwrap_or_default();
        ensure!(
            c == Counts {
                created: sizes.initial as u64,
                updated: 0,
                skipped: 0,
                deleted: 0
            },
            "initial save counted {c:?}"
        );
        println!(
            "  build + validate + stage: {} | average document {} bytes of JSON",
            secs(build),
            json_bytes / sizes.initial
        );
        println!(
            "  commit_run:               {} | {} docs/s",
            secs(commit),
            thousands(per_sec(sizes.initial, commit))
        );
        println!(
            "  end to end:               {} | {} docs/s",
            secs(total),
            thousands(per_sec(sizes.initial, total))
        );
        println!(
            "  RSS at start {} | peak RSS (VmHWM) {}",
            mib(mem.start_kib),
            mib(mem.peak_kib)
        );
        println!(
            "  files after commit: database {} + WAL {}",
            bytes_mib(file_size(&db)),
            bytes_mib(file_size(&wal_path(&db)))
        );
        // Every start runs PRAGMA quick_check (issue 8): what it costs on
        // this store, through a second handle on the same file.
        let t = Instant::now();
        let reopened = SqliteStore::open(&db).await?;
        let open_time = t.elapsed();
        let t = Instant::now();
        reopened.quick_check().await?;
        let check = t.elapsed();
        reopened.pool().close().await;
        println!(
            "  open with quick_check:    {} | quick_check alone {}",
            secs(open_time),
            secs(check)
        );
        let items = format!("{} bills", thousands(sizes.initial as f64));
        rows.push(Row {
            phase: "Store: initial save, `commit_run` only",
            items: items.clone(),
            wall: commit,
            throughput: format!("{} docs/s", thousands(per_sec(sizes.initial, commit))),
            mem,
        });
        rows.push(Row {
            phase: "Store: initial save, build + stage + commit",
            items,
            wall: total,
            throughput: format!("{} docs/s", thousands(per_sec(sizes.initial, total))),
            mem,
        });
        close(store).await;
        println!(
            "  database after close (WAL checkpointed): {}",
            bytes_mib(file_size(&db))
        );
        // The child re-saves into its own copy of this state.
        std::fs::copy(&db, &child_db)?;
        if wal_path(&db).exists() {
            std::fs::copy(wal_path(&db), wal_path(&child_db))?;
        }

        // Re-save: mostly existing, some new, in this process.
        println!();
        println!(
            "[store] re-save: {n_resave} bills, {} already stored (identical), {} new; store reopened",
            sizes.existing, sizes.new
        );
        let store = SqliteStore::open(&db).await?;
        let mem = meter.start();
        let r = resave(&store, sizes).await?;
        let mem = meter.stop(mem);
        println!("  counts: {:?}", r.counts);
        println!(
            "  commit_run: {} | {} docs/s",
            secs(r.commit),
            thousands(per_sec(n_resave, r.commit))
        );
        println!(
            "  end to end: {} | {} docs/s",
            secs(r.total),
            thousands(per_sec(n_resave, r.total))
        );
        println!(
            "  RSS at start {} | peak RSS (VmHWM) {} (the start includes heap the allocator kept after the first phase)",
            mib(mem.start_kib),
            mib(mem.peak_kib)
        );
        let items = format!(
            "{} bills ({} new)",
            thousands(n_resave as f64),
            thousands(sizes.new as f64)
        );
        rows.push(Row {
            phase: "Store: re-save, `commit_run` only",
            items: items.clone(),
            wall: r.commit,
            throughput: format!("{} docs/s", thousands(per_sec(n_resave, r.commit))),
            mem,
        });
        rows.push(Row {
            phase: "Store: re-save, build + stage + commit",
            items,
            wall: r.total,
            throughput: format!("{} docs/s", thousands(per_sec(n_resave, r.total))),
            mem,
        });

        let stored: u64 = store.count_by_doctype().await?.values().sum();
        ensure!(
            stored == (sizes.initial + sizes.new) as u64,
            "the store holds {stored} documents"
        );
        close(store).await;
        anyhow::Ok((stored, file_size(&db)))
    })?;

    // The same re-save in a fresh process, for its memory.
    println!();
    println!("[store] the same re-save in a fresh process, on a copy of the store");
    let (commit, total, peak) = resave_in_child(&child_db, sizes)?;
    println!(
        "  commit_run: {} | end to end {} | {} docs/s | whole-process peak RSS (VmHWM) {}",
        secs(commit),
        secs(total),
        thousands(per_sec(n_resave, commit)),
        mib(peak)
    );
    rows.push(Row {
        phase: "Store: re-save in a fresh process, `commit_run` only",
        items: format!(
            "{} bills ({} new)",
            thousands(n_resave as f64),
            thousands(sizes.new as f64)
        ),
        wall: commit,
        throughput: format!("{} docs/s", thousands(per_sec(n_resave, commit))),
        mem: Mem {
            start_kib: None,
            peak_kib: peak,
        },
    });
    println!();
    println!(
        "[store] {stored} documents | database {} after close ({} bytes/doc)",
        bytes_mib(db_size),
        db_size / stored.max(1)
    );
    drop(dir);

    // (b) Parsing.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/free-mobile/home_line1.html");
    let html = std::fs::read_to_string(&fixture)
        .with_context(|| format!("cannot read {}", fixture.display()))?;
    println!();
    println!(
        "[parse] {n_pages} x {} ({} KiB): HtmlPage::parse + parse_home + map::bill_for per invoice, one thread",
        fixture.file_name().unwrap().to_string_lossy(),
        html.len() / 1024
    );
    // One untimed pass, which also checks the page.
    let home = pages::parse_home(&HtmlPage::parse(HOME_URL, &html))?;
    ensure!(
        home.invoices.len() == FIXTURE_INVOICES,
        "the fixture has {} invoices, not {FIXTURE_INVOICES}",
        home.invoices.len()
    );
    let mem = meter.start();
    let t0 = Instant::now();
    let mut invoices = 0usize;
    for _ in 0..n_pages {
        let page = HtmlPage::parse(HOME_URL, black_box(&html));
        let home = pages::parse_home(&page)?;
        for invoice in &home.invoices {
            black_box(map::bill_for(invoice, &home.current_phone, &home.holder));
            invoices += 1;
        }
    }
    let wall = t0.elapsed();
    let mem = meter.stop(mem);
    ensure!(
        invoices == n_pages * FIXTURE_INVOICES,
        "mapped {invoices} invoices from {n_pages} pages"
    );
    println!(
        "  {} | {} pages/s | {} invoices/s",
        secs(wall),
        thousands(per_sec(n_pages, wall)),
        thousands(per_sec(invoices, wall))
    );
    println!(
        "  RSS at start {} | peak RSS (VmHWM) {}",
        mib(mem.start_kib),
        mib(mem.peak_kib)
    );
    rows.push(Row {
        phase: "Parse: home page + map to bills",
        items: format!(
            "{} pages / {} invoices",
            thousands(n_pages as f64),
            thousands(invoices as f64)
        ),
        wall,
        throughput: format!(
            "{} pages/s, {} invoices/s",
            thousands(per_sec(n_pages, wall)),
            thousands(per_sec(invoices, wall))
        ),
        mem,
    });

    // The table.
    println!();
    println!("## Results (scale {scale}, {cores} cores)");
    println!();
    println!("| Phase | Items | Wall time | Throughput | RSS at start | Peak RSS (VmHWM) |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.phase,
            r.items,
            secs(r.wall),
            r.throughput,
            r.mem
                .start_kib
                .map_or_else(|| "-".to_owned(), |k| mib(Some(k))),
            mib(r.mem.peak_kib)
        );
    }
    println!();
    println!(
        "Database file after both saves: {} for {} documents ({} bytes/doc, WAL checkpointed).",
        bytes_mib(db_size),
        thousands(stored as f64),
        db_size / stored.max(1)
    );
    if !meter.reset_works {
        println!();
        println!(
            "In-process peak RSS figures are VmHWM since process start (the mark could not be reset)."
        );
    }
    Ok(())
}
