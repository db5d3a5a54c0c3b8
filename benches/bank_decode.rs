//! Bank JSON path benchmark: decode and map 100,000 NextGenPSD2
//! transactions, on one core.
//!
//! Run with `cargo bench --bench bank_decode`. A plain program
//! (`harness = false`) that prints its figures.
//!
//! The input is one `GET /v1/accounts/{id}/transactions` answer in the
//! Berlin Group's JSON (`transactionsResponse-200_json`), generated here:
//! 100,000 transactions, 95 % booked and 5 % pending, with the fields a real
//! bank sends (ids, booking and value dates, amount, creditor or debtor,
//! remittance text, bank transaction code, sometimes a mandate). Each round
//! does what the konnector does with a page:
//!
//! 1. decode the body through the framework's typed decoder
//!    ([`Response::json`], `serde_path_to_error`: the one that names the
//!    JSON path on a schema change), into the konnector's own types;
//! 2. map every transaction to an `io.cozy.bank.operations` document with
//!    the konnector's pure mapping (`page_operations`: labels, type, dates,
//!    exact decimal amount, vendor ids).
//!
//! Each figure is the CPU time of this thread
//! (`/proc/thread-self/schedstat`), the median of 5 rounds: one core, and
//! other processes on the machine do not count. The target (issue 10) is
//! 500,000 records/s.
//!
//! `GLEANER_BENCH_SCALE` (a float, default 1.0) scales the transaction
//! count.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use chrono::NaiveDate;
use gleaner_framework::http::Response;
use gleaner_konnectors::bank::nextgenpsd2::api::TransactionsAnswer;
use gleaner_konnectors::bank::nextgenpsd2::mapping::page_operations;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

mod common;

/// Transactions at scale 1.
const TRANSACTIONS: f64 = 100_000.0;
/// Rounds; the median is reported.
const ROUNDS: usize = 5;

const CREDITORS: [&str; 8] = [
    "FREE MOBILE",
    "EDF",
    "CARREFOUR MARKET",
    "SNCF CONNECT",
    "AMAZON EU SARL",
    "BOULANGERIE DU PORT",
    "MUTUELLE GENERALE",
    "TOTALENERGIES",
];

/// One answer holding `n` transactions.
fn answer(n: usize) -> String {
    let mut booked = String::with_capacity(n * 420);
    let mut pending = String::new();
    let start = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    for i in 0..n {
        let day = start + chrono::Days::new((i / 300) as u64);
        let value = day + chrono::Days::new((i % 3) as u64);
        let cents = 100 + (i * 7919) % 250_000;
        let debit = i % 9 != 0;
        let amount = format!(
            "{}{}.{:02}",
            if debit { "-" } else { "" },
            cents / 100,
            cents % 100
        );
        let party = CREDITORS[i % CREDITORS.len()];
        let out = if i % 20 == 19 {
            &mut pending
        } else {
            &mut booked
        };
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"transactionId":"TX{i:010}","entryReference":"ER{i:08}","endToEndId":"E2E-{i}","#
        );
        if i % 5 == 0 {
            let _ = write!(
                out,
                r#""mandateId":"MDT{:06}","creditorId":"FR12ZZZ{:06}","#,
                i % 997,
                i % 991
            );
        }
        let _ = write!(
            out,
            r#""bookingDate":"{day}","valueDate":"{value}","transactionAmount":{{"currency":"EUR","amount":"{amount}"}},"#
        );
        if debit {
            let _ = write!(out, r#""creditorName":"{party}","#);
        } else {
            let _ = write!(out, r#""debtorName":"{party}","#);
        }
        let _ = write!(
            out,
            r#""remittanceInformationUnstructured":"{} REF {:08} {}","bankTransactionCode":"PMNT-{}"}}"#,
            if i % 5 == 0 { "PRLV SEPA" } else { "CB" },
            i,
            day.format("%d/%m"),
            if i % 5 == 0 { "RDDT-ESDD" } else { "CCRD-POSD" }
        );
    }
    format!(
        r#"{{"account":{{"iban":"FR7612345987650123456789014"}},"transactions":{{"booked":[{booked}],"pending":[{pending}],"_links":{{"account":{{"href":"/v1/accounts/acc-1"}}}}}}}}"#
    )
}

/// CPU time of this thread, from the kernel's scheduler statistics.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let scale: f64 = std::env::var("GLEANER_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = ((TRANSACTIONS * scale) as usize).max(100);
    let body = Bytes::from(answer(n));
    let response = Response {
        url: "https://api.bank.example/v1/accounts/acc-1/transactions?bookingStatus=both"
            .parse()
            .unwrap(),
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body,
    };
    let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    println!(
        "bank decode + map: {n} NextGenPSD2 transactions, one {:.1} MB answer, {ROUNDS} rounds, one core",
        response.body.len() as f64 / 1e6
    );

    let mut decode_times = Vec::new();
    let mut total_times = Vec::new();
    let mut mapped = 0;
    for _ in 0..ROUNDS {
        let t0 = thread_cpu();
        let answer: TransactionsAnswer = response.json().unwrap();
        let t1 = thread_cpu();
        let report = answer.transactions.unwrap_or_default();
        let ops = page_operations(
            &report.booked,
            &report.pending,
            "acc-1",
            Some("doc-acc-1"),
            today,
            "https://api.bank.example/v1/accounts/acc-1/transactions",
        )
        .unwrap();
        let t2 = thread_cpu();
        mapped = black_box(ops).len();
        decode_times.push(t1 - t0);
        total_times.push(t2 - t0);
    }
    assert_eq!(mapped, n, "every transaction maps to one operation");
    let decode = median(decode_times);
    let total = median(total_times);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "  decode (typed, JSON-path errors):  {:>8.1} ms  {:>10.0} records/s",
        decode.as_secs_f64() * 1e3,
        rate(decode)
    );
    println!(
        "  decode + map to operations:        {:>8.1} ms  {:>10.0} records/s  (target 500,000)",
        total.as_secs_f64() * 1e3,
        rate(total)
    );
    if let Some(hwm) = common::status_kib("VmHWM") {
        println!("  peak RSS of the process: {:.1} MiB", hwm as f64 / 1024.0);
    }
}
