//! Times the linking pass on a large store: `N` bank operations (default
//! 100,000) over ten years and a bill for one in fifty of them, in a
//! temporary SQLite store. Prints the first pass (links everything), the
//! second (changes nothing) and the pure matcher alone.
//!
//! `cargo run --release -p gleaner-framework --example linking_scale [-- N]`

use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use gleaner_framework::bank::linking::{self, Rule, StoredBill, StoredOperation};
use gleaner_framework::store::{DocStore, RunCommit, SqliteStore, StagedDoc};
use serde_json::json;

const VENDORS: [(&str, &str); 5] = [
    ("Free Mobile", "PRLV SEPA FREE MOBILE"),
    ("EDF", "PRLV SEPA EDF CLIENTS PARTICULIERS"),
    ("Orange", "PRLV SEPA ORANGE SA"),
    ("Ameli", "VIR SEPA CPAM PARIS"),
    ("MAIF", "PRLV SEPA MAIF"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "gleaner_framework=debug",
        ))
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(n))
}

async fn run(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("g.db")).await?;
    let start = NaiveDate::from_ymd_opt(2016, 1, 1).ok_or("date")?;
    let mut ops = Vec::with_capacity(n);
    let mut bills = Vec::new();
    let mut seed: u64 = 42;
    let mut next = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    for i in 0..n {
        let day = start + Duration::days((i * 3650 / n) as i64);
        let cents = 100 + (next() % 20_000) as i64;
        let paid = i % 50 == 0;
        let (vendor, label) = VENDORS[(next() % 5) as usize];
        let refund = vendor == "Ameli";
        let amount = if refund { cents } else { -cents };
        let label = if paid {
            label.to_owned()
        } else {
            format!("CB SHOP {}", next() % 1000)
        };
        ops.push(StagedDoc::from_value(
            "io.cozy.bank.operations",
            format!("acc|{i}"),
            None,
            &json!({"label": label, "date": format!("{day}T00:00:00Z"),
                    "amount": rust_decimal::Decimal::new(amount, 2), "currency": "EUR",
                    "vendorId": i.to_string(), "vendorAccountId": "acc"}),
        ));
        if paid {
            let bill_day = day - Duration::days((next() % 5) as i64);
            bills.push(StagedDoc::from_value(
                "io.cozy.bills",
                format!("bill|{i}"),
                None,
                &json!({"vendor": vendor, "date": format!("{bill_day}T00:00:00Z"),
                        "amount": rust_decimal::Decimal::new(cents, 2), "currency": "EUR",
                        "isRefund": refund}),
            ));
        }
    }
    let n_bills = bills.len();
    let commit = |account: &str, docs: Vec<StagedDoc>| RunCommit {
        account_id: account.to_owned(),
        account_identifier: None,
        run_id: account.to_owned(),
        konnector: "scale".into(),
        docs,
        deletes: Vec::new(),
        state: json!({}),
        finished_at: Utc::now(),
    };
    store.commit_run(commit("bank", ops)).await?;
    store.commit_run(commit("bills", bills)).await?;
    println!("{n} operations, {n_bills} bills");

    let t = Instant::now();
    let first = store.link_bills_and_operations(Utc::now()).await?;
    println!(
        "first pass: {:.0} ms, {} links, {} documents written",
        t.elapsed().as_secs_f64() * 1000.0,
        first.links,
        first.changed()
    );
    let t = Instant::now();
    let second = store.link_bills_and_operations(Utc::now()).await?;
    println!(
        "second pass: {:.0} ms, {} documents written",
        t.elapsed().as_secs_f64() * 1000.0,
        second.changed()
    );

    // Reading the operations' rows alone, nothing parsed: the floor.
    let t = Instant::now();
    let mut bytes = 0usize;
    {
        use futures_util::TryStreamExt;
        use sqlx::Row;
        let mut rows = sqlx::query("SELECT id, data FROM documents WHERE doctype = ?")
            .bind("io.cozy.bank.operations")
            .fetch(store.pool());
        while let Some(row) = rows.try_next().await? {
            let text: &str = row.try_get("data")?;
            bytes += text.len();
        }
    }
    println!(
        "reading the {n} operation rows alone: {:.0} ms ({} MB)",
        t.elapsed().as_secs_f64() * 1000.0,
        bytes / 1_000_000
    );

    // The matcher alone, on facts already read.
    let all_ops = store
        .list("io.cozy.bank.operations", None, None, u32::MAX)
        .await?;
    let all_bills = store.list("io.cozy.bills", None, None, u32::MAX).await?;
    let ops: Vec<StoredOperation> = all_ops
        .iter()
        .filter_map(|d| {
            Some(StoredOperation {
                facts: linking::operation_facts(&d.id, &d.data)?,
                linked: vec![],
            })
        })
        .collect();
    let bills: Vec<StoredBill> = all_bills
        .iter()
        .filter_map(|d| {
            Some(StoredBill {
                facts: linking::bill_facts(&d.id, &d.data)?,
                linked: vec![],
            })
        })
        .collect();
    let t = Instant::now();
    let plan = linking::plan(&bills, &ops, &Rule::scored());
    println!(
        "matcher alone: {:.0} ms ({} links)",
        t.elapsed().as_secs_f64() * 1000.0,
        plan.links
    );
    Ok(())
}
