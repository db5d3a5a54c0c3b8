//! Bank import benchmark: 100,000 bank operations into the SQLite store,
//! end to end through `run_konnector` (`RunContext::save_bank_account`,
//! `sync_window`, `save_bank_operations`, `save_balances`, then the run's
//! one `commit_run`).
//!
//! Run with `cargo bench -p gleaner-framework --bench bank`. A plain
//! program (`harness = false`): each phase runs in a **fresh child
//! process** of its own, so its peak RSS (`VmHWM`) is that whole process's
//! peak (tokio, SQLite, the staged run, everything).
//!
//! - **first import**: an empty store; 5 bank accounts of 20,000
//!   operations each (5 years, 1 % pending), plus their daily balances;
//! - **re-import**: the same 100,000 operations again, the same day: it
//!   must create nothing;
//! - **booking day**: two days later, the pending operations come back
//!   booked under other ids, labels and amounts (pending-to-booked
//!   matching), with the rest unchanged;
//! - **more**: 5 other bank accounts, 100,000 new operations, into the
//!   same store (new documents, but the konnector account has operations
//!   already: every document goes through the lookup).
//!
//! `GLEANER_BENCH_SCALE` (a float, default 1.0) scales the operation
//! count. `docs/performance.md` has the figures.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Utc};
use gleaner_framework::bank::OperationBatch;
use gleaner_framework::clock::ManualClock;
use gleaner_framework::doctypes::{BankAccount, BankOperation, Doctype};
use gleaner_framework::filters::Currency;
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::store::{Account, DocStore, FileStore, SqliteStore};
use gleaner_framework::{Konnector, Manifest, Result, RunContext, RunEnv, RunOptions};
use rust_decimal::Decimal;

const ACCOUNTS: usize = 5;
const OPERATIONS: f64 = 100_000.0;
const DAYS: i64 = 5 * 365;
/// In the last `PENDING_DAYS` days, one operation in 4 is pending.
const PENDING_DAYS: i64 = 4;
const PHASE_ENV: &str = "GLEANER_BANK_BENCH_PHASE";
const DB_ENV: &str = "GLEANER_BANK_BENCH_DB";
const RESULT: &str = "BANK-BENCH-RESULT";

const MANIFEST: &str = r#"
slug = "benchbank"
name = "Bench Bank"
version = "1.0.0"
category = "bank"
vendor_link = "https://bank.example"
base_url = "https://api.bank.example"
hosts = ["api.bank.example"]
frequency = "daily"
time_interval = [1, 6]
data_types = ["io.cozy.bank.accounts", "io.cozy.bank.operations", "io.cozy.bank.balancehistories"]

[fields.login]
type = "text"
label = "Login"
identifier = true
"#;

fn scale() -> f64 {
    std::env::var("GLEANER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn per_account() -> usize {
    ((OPERATIONS * scale()) as usize / ACCOUNTS).max(10)
}

fn today() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 6, 0, 0).unwrap()
}

const LABELS: &[&str] = &[
    "CB CARREFOUR MARKET",
    "PRLV SEPA FREE MOBILE",
    "VIR SEPA SALAIRE ACME",
    "CB SNCF INTERNET",
    "RETRAIT DAB",
    "CB AMAZON EU SARL",
    "PRLV SEPA EDF",
    "CB BOULANGERIE DU COIN",
];

/// The `i`th operation of account `a`, as a konnector's mapping gives it.
/// `booked_day`: the operations pending on the first day come back booked
/// (another id, label and amount) when true.
fn operation(a: usize, i: usize, n: usize, booked_day: bool) -> BankOperation {
    // Oldest first, spread evenly over DAYS; the last PENDING_DAYS days
    // hold the pending ones (one in 4 there).
    let age = DAYS - 1 - (i as i64 * DAYS / n as i64);
    let date = (today() - TimeDelta::days(age))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let pending = age < PENDING_DAYS && i.is_multiple_of(4);
    let cents = -((i as i64 * 7_919) % 25_000 + 100);
    let label = LABELS[i % LABELS.len()];
    let mut op = BankOperation {
        label: format!("{label} {:04}", i % 997),
        original_bank_label: Some(format!("{label} {:04} REF{i:08}", i % 997)),
        operation_type: Some(
            if i.is_multiple_of(3) {
                "card"
            } else {
                "transfer"
            }
            .into(),
        ),
        date,
        realisation_date: None,
        amount: Decimal::new(cents, 2),
        currency: Currency::EUR,
        account: None,
        vendor_id: Some(format!("tx-{a}-{i:08}")),
        vendor_account_id: format!("ACC-{a}"),
        is_coming: pending,
        bills: Vec::new(),
    };
    if pending {
        op.vendor_id = Some(format!("auth-{a}-{i:08}"));
        if booked_day {
            op.is_coming = false;
            op.vendor_id = Some(format!("booked-{a}-{i:08}"));
            op.label = format!("{label} PARIS");
            op.amount += Decimal::new(-37, 2);
            op.date += TimeDelta::days(2);
        }
    }
    op
}

struct BenchBank {
    manifest: Manifest,
    booked_day: bool,
    /// The first bank account's number (another 5 accounts: 5).
    first_account: usize,
    /// Time spent building the operations (the "decoded" input).
    build: Arc<Mutex<Duration>>,
    /// Time spent in `save_bank_operations`.
    stage: Arc<Mutex<Duration>>,
    /// The konnector's whole run (the rest of the wall time is the commit).
    run: Arc<Mutex<Duration>>,
}

#[async_trait::async_trait]
impl Konnector for BenchBank {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let started = Instant::now();
        let n = per_account();
        for a in self.first_account..self.first_account + ACCOUNTS {
            let account = BankAccount {
                label: format!("Compte {a}"),
                institution_label: "Bench Bank".into(),
                account_type: "checkings".into(),
                number: Some(format!("0000{a}")),
                iban: None,
                balance: Decimal::new(123_456, 2),
                balance_date: Some(ctx.today()),
                currency: Currency::EUR,
                vendor_id: format!("ACC-{a}"),
            };
            let id = ctx.save_bank_account(&account).await?;
            let window = ctx.sync_window(&account.vendor_id)?;
            let t = Instant::now();
            // The same operations every run (a bank that ignores the
            // window): the re-import sees all 100,000 again.
            let operations: Vec<BankOperation> = (0..n)
                .map(|i| operation(a, i, n, self.booked_day))
                .collect();
            *self.build.lock().unwrap() += t.elapsed();
            let t = Instant::now();
            ctx.save_bank_operations(OperationBatch {
                vendor_account_id: account.vendor_id.clone(),
                window,
                operations,
            })
            .await?;
            *self.stage.lock().unwrap() += t.elapsed();
            let mut balances = Vec::new();
            let mut day = window.from;
            while day <= window.to {
                balances.push((day, Decimal::new(100_000 + day.ordinal() as i64, 2)));
                day = day.succ_opt().unwrap();
            }
            ctx.save_balances(&id, &account.vendor_id, &balances)
                .await?;
        }
        *self.run.lock().unwrap() = started.elapsed();
        Ok(())
    }
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time of this process so far (all threads, user + system), in ms,
/// from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

/// The 1-minute load average, to read the wall times against.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// `benches/foundation.rs`'s bills (the same generator), committed with
/// one `commit_run` into an empty store: the store's gain for every
/// doctype, comparable with that bench's "initial save" row.
fn bills_child(db: &str) {
    use gleaner_framework::doctypes::{Bill, BillType};
    use gleaner_framework::store::{RunCommit, StagedDoc};
    const VENDORS: &[&str] = &[
        "Free Mobile",
        "Orange",
        "EDF",
        "Engie",
        "MAIF",
        "Bouygues Telecom",
        "SFR",
    ];
    let n = (OPERATIONS * scale()) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let load = load();
    let cpu_start = cpu_ms().unwrap_or(0.0);
    let (wall, commit) = runtime.block_on(async {
        let store = SqliteStore::open(Path::new(db)).await.unwrap();
        let t = Instant::now();
        let docs: Vec<StagedDoc> = (0..n)
            .map(|i| {
                let day = i % 7_300;
                let contract = i / 7_300;
                let vendor = VENDORS[contract % VENDORS.len()];
                let date = Utc.with_ymd_and_hms(2006, 1, 1, 0, 0, 0).unwrap()
                    + TimeDelta::days(day as i64);
                let amount = Decimal::new(500 + ((i as i64 * 7_919) % 25_000), 2);
                let mut b = Bill::new(vendor, date, amount, Currency::EUR);
                b.bill_type = Some(BillType::Other);
                b.recurrence = Some("monthly".into());
                b.vendor_ref = Some(format!("INV-{i:08}"));
                b.contract_id = Some(format!("contract-{contract:04}"));
                b.contract_label = Some(format!("{vendor} contract {contract}"));
                b.validate().unwrap();
                let data = serde_json::to_value(&b).unwrap();
                StagedDoc::from_value(Bill::DOCTYPE, b.dedup_key(), None, &data)
            })
            .collect();
        let c = Instant::now();
        let counts = store
            .commit_run(gleaner_framework::store::RunCommit {
                account_id: "bench-account".into(),
                account_identifier: Some("bench@example.invalid".into()),
                run_id: gleaner_framework::ids::new_id(),
                konnector: "bench".into(),
                docs,
                deletes: Vec::new(),
                state: serde_json::json!({"cursor": 1}),
                finished_at: Utc::now(),
            } as RunCommit)
            .await
            .unwrap();
        assert_eq!(counts[Bill::DOCTYPE].created, n as u64);
        let commit = c.elapsed();
        let wall = t.elapsed();
        store.pool().close().await;
        (wall, commit)
    });
    println!(
        "{RESULT} bills load={load} cpu_ms={:.0} wall_ms={:.1} commit_ms={:.1} created={n} hwm_kib={}",
        cpu_ms().unwrap_or(0.0) - cpu_start,
        wall.as_secs_f64() * 1e3,
        commit.as_secs_f64() * 1e3,
        status_kib("VmHWM").unwrap_or(0),
    );
}

/// One phase, in this (child) process: prints one result line.
fn child(phase: &str, db: &str) {
    if phase == "bills" {
        bills_child(db);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let booked_day = phase == "booking";
    let first_account = if phase == "more" { ACCOUNTS } else { 0 };
    let rss_start = status_kib("VmRSS").unwrap_or(0);
    let load = load();
    let cpu_start = cpu_ms().unwrap_or(0.0);
    let stage = Arc::new(Mutex::new(Duration::ZERO));
    let run = Arc::new(Mutex::new(Duration::ZERO));
    let (wall, report, build, counts) = runtime.block_on(async {
        let dir = Path::new(db).parent().unwrap().to_owned();
        let store = Arc::new(SqliteStore::open(Path::new(db)).await.unwrap());
        let env = RunEnv {
            store: Arc::clone(&store) as Arc<dyn DocStore>,
            files: FileStore::open(&dir.join("files")).unwrap(),
            retry: RetryPolicy::default(),
        };
        let account = Account {
            id: "bench-account".into(),
            konnector: "benchbank".into(),
            label: "bench".into(),
            fields: BTreeMap::from([
                ("login".to_owned(), "me".to_owned()),
                ("history_days".to_owned(), DAYS.to_string()),
            ]),
            sealed_secrets: Vec::new(),
            endpoint: None,
            created_at: today(),
            folder: "Bench Bank/bench-account".into(),
        };
        let clock = ManualClock::new(if booked_day {
            today() + TimeDelta::days(2)
        } else {
            today()
        });
        let build = Arc::new(Mutex::new(Duration::ZERO));
        let konnector = BenchBank {
            manifest: Manifest::from_toml("benchbank.toml", MANIFEST).unwrap(),
            booked_day,
            first_account,
            build: Arc::clone(&build),
            stage: Arc::clone(&stage),
            run: Arc::clone(&run),
        };
        let options = RunOptions {
            clock: Arc::new(clock),
            ..RunOptions::default()
        };
        let t = Instant::now();
        let report =
            gleaner_framework::run_konnector(&konnector, &account, BTreeMap::new(), &env, options)
                .await
                .unwrap();
        let wall = t.elapsed();
        let counts = store.count_by_doctype().await.unwrap();
        store.pool().close().await;
        let build = *build.lock().unwrap();
        (wall, report, build, counts)
    });
    let ops = report
        .counts
        .get(BankOperation::DOCTYPE)
        .copied()
        .unwrap_or_default();
    println!(
        "{RESULT} {phase} load={load} cpu_ms={:.0} wall_ms={:.1} build_ms={:.1} stage_ms={:.1} run_ms={:.1} created={} updated={} skipped={} deleted={} stored_ops={} rss_start_kib={} hwm_kib={}",
        cpu_ms().unwrap_or(0.0) - cpu_start,
        wall.as_secs_f64() * 1e3,
        build.as_secs_f64() * 1e3,
        stage.lock().unwrap().as_secs_f64() * 1e3,
        run.lock().unwrap().as_secs_f64() * 1e3,
        ops.created,
        ops.updated,
        ops.skipped,
        ops.deleted,
        counts.get(BankOperation::DOCTYPE).copied().unwrap_or(0),
        rss_start,
        status_kib("VmHWM").unwrap_or(0),
    );
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("?")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    if let (Ok(phase), Ok(db)) = (std::env::var(PHASE_ENV), std::env::var(DB_ENV)) {
        child(&phase, &db);
        return;
    }
    // `cargo bench` passes `--bench`; arguments are ignored.
    let runs: usize = std::env::var("GLEANER_BANK_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let exe = std::env::current_exe().unwrap();
    let n = per_account() * ACCOUNTS;
    println!(
        "bank bench: {n} operations ({ACCOUNTS} accounts x {}), {} days, scale {}, {runs} runs",
        per_account(),
        DAYS,
        scale()
    );
    let phases = ["first", "again", "booking", "more"];
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); phases.len()];
    let mut size = 0;
    let mut bills: Vec<String> = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bank.db");
        for (k, phase) in phases.iter().enumerate() {
            let out = Command::new(&exe)
                .env(PHASE_ENV, phase)
                .env(DB_ENV, &db)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let Some(line) = stdout.lines().find(|l| l.starts_with(RESULT)) else {
                eprintln!("{}", String::from_utf8_lossy(&out.stderr));
                panic!("phase {phase} gave no result");
            };
            println!("{line}");
            lines[k].push(line.to_owned());
        }
        size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        let out = Command::new(&exe)
            .env(PHASE_ENV, "bills")
            .env(DB_ENV, dir.path().join("bills.db"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().find(|l| l.starts_with(RESULT)) {
            Some(line) => {
                println!("{line}");
                bills.push(line.to_owned());
            }
            None => eprintln!("bills: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }
    let num = |line: &String, name: &str| field(line, name).parse::<f64>().unwrap_or(f64::NAN);
    println!();
    println!(
        "| phase | operations | wall time, median (min-max) | docs/s at the median | CPU time, median | created / updated / skipped / deleted | peak RSS, max (whole process) | load avg |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, runs) in [
        "first import",
        "re-import, same day",
        "booking day (+2 days)",
        "5 more accounts, first import into a store holding 100,000",
    ]
    .iter()
    .zip(&lines)
    {
        let walls: Vec<f64> = runs.iter().map(|l| num(l, "wall_ms") / 1e3).collect();
        let wall = median(walls.clone());
        let min = walls.iter().copied().fold(f64::INFINITY, f64::min);
        let max = walls.iter().copied().fold(0.0, f64::max);
        let cpu = median(runs.iter().map(|l| num(l, "cpu_ms") / 1e3).collect());
        let hwm = runs.iter().map(|l| num(l, "hwm_kib")).fold(0.0, f64::max);
        let last = &runs[runs.len() - 1];
        let seen: f64 = ["created", "updated", "skipped"]
            .iter()
            .map(|f| num(last, f))
            .sum();
        let loads: Vec<&str> = runs.iter().map(|l| field(l, "load")).collect();
        println!(
            "| {name} | {seen} | {wall:.3} s ({min:.3}-{max:.3}) | {:.0} | {cpu:.2} s | {} / {} / {} / {} | {:.1} MiB | {} |",
            seen / wall,
            field(last, "created"),
            field(last, "updated"),
            field(last, "skipped"),
            field(last, "deleted"),
            hwm / 1024.0,
            loads.join(", ")
        );
    }
    if !bills.is_empty() {
        let wall = median(bills.iter().map(|l| num(l, "wall_ms") / 1e3).collect());
        let commit = median(bills.iter().map(|l| num(l, "commit_ms") / 1e3).collect());
        let cpu = median(bills.iter().map(|l| num(l, "cpu_ms") / 1e3).collect());
        let hwm = bills.iter().map(|l| num(l, "hwm_kib")).fold(0.0, f64::max);
        let n = num(&bills[0], "created");
        println!(
            "| bills (foundation's generator), build + stage + one commit_run | {n} | {wall:.3} s (commit_run alone {commit:.3} s: {:.0} docs/s) | {:.0} | {cpu:.2} s | {n} / 0 / 0 / 0 | {hwm_mib:.1} MiB | {} |",
            n / commit,
            n / wall,
            bills
                .iter()
                .map(|l| field(l, "load"))
                .collect::<Vec<_>>()
                .join(", "),
            hwm_mib = hwm / 1024.0,
        );
    }
    println!(
        "\ndatabase after the four runs (WAL checkpointed): {:.1} MiB",
        size as f64 / 1048576.0
    );
}
