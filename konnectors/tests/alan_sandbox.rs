//! End-to-end runs of the Alan konnector against its sandbox, through the
//! test kit's `Harness` (a fresh store, vault and files tree per test):
//! the normal run's documents, a second run creating and downloading
//! nothing, incremental paging, the history depth, and every failure
//! scenario's exact error code with nothing stored.

#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{TimeZone, Utc};
use gleaner_framework::clock::ManualClock;
use gleaner_framework::{ErrorCode, KonnectorError, RunReport};
use gleaner_konnectors::insurance::alan::Alan;
use gleaner_konnectors::insurance::alan::sandbox::{
    FIXTURE_JSON, LOGIN, PASSWORD, Sandbox, Scenario,
};
use gleaner_testing::{Harness, TestAccount};
use serde_json::Value;

const BILLS: &str = "io.cozy.bills";
const FILES: &str = "io.cozy.files";

struct Setup {
    h: Harness,
    sandbox: Sandbox,
    account: TestAccount,
}

impl Setup {
    async fn start(scenario: Scenario) -> Self {
        Self::with(scenario, None, &[]).await
    }

    /// A sandbox, a fresh installation (clock `now` when given) and an
    /// account with `extra` fields.
    async fn with(
        scenario: Scenario,
        now: Option<chrono::DateTime<Utc>>,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut builder = Harness::builder().sessions(false);
        if let Some(now) = now {
            builder = builder.clock(ManualClock::new(now));
        }
        let h = builder.build().await.unwrap();
        let sandbox = Sandbox::start(scenario).await.unwrap();
        let mut fields = vec![("login", LOGIN)];
        fields.extend_from_slice(extra);
        let account = h
            .account(
                "alan",
                &fields,
                &[("password", PASSWORD)],
                Some(&sandbox.base_url()),
            )
            .await
            .unwrap();
        Self {
            h,
            sandbox,
            account,
        }
    }

    async fn run(&self) -> Result<RunReport, KonnectorError> {
        self.h.run(&Alan::new().unwrap(), &self.account).await
    }

    async fn assert_nothing_saved(&self) {
        self.h.assert_nothing_saved(&self.account).await;
    }

    async fn bills(&self) -> Vec<Value> {
        self.h
            .docs(BILLS)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.data)
            .collect()
    }
}

fn created(report: &RunReport, doctype: &str) -> u64 {
    report.counts.get(doctype).map_or(0, |c| c.created)
}

fn find<'a>(bills: &'a [Value], care: &str, who: &str) -> &'a Value {
    bills
        .iter()
        .find(|b| b["originalDate"].as_str().unwrap().starts_with(care) && b["beneficiary"] == who)
        .unwrap_or_else(|| panic!("no bill for {who} on {care}"))
}

fn amount(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not an amount: {other}"),
    }
}

#[tokio::test]
async fn a_normal_run_saves_the_seven_refunds_and_four_statements_then_nothing_again() {
    let s = Setup::start(Scenario::Normal).await;
    let started = std::time::Instant::now();
    let report = s.run().await.unwrap();
    let took = started.elapsed();
    println!("normal run: {took:?}");
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");

    assert_eq!(created(&report, BILLS), 7, "{:?}", report.counts);
    assert_eq!(created(&report, FILES), 4, "{:?}", report.counts);
    assert_eq!(report.files_downloaded, 4);
    assert_eq!(report.retries, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(s.sandbox.pdf_downloads(), 4);
    // Camille: pages 1 (3 events) and 2 (1); Louise: page 1 (3) and 2 (0).
    assert_eq!(s.sandbox.list_requests(), 4);
    assert_eq!(s.sandbox.login_posts(), 1);

    let bills = s.bills().await;
    assert_eq!(bills.len(), 7);
    for b in &bills {
        assert_eq!(b["vendor"], "Alan");
        assert_eq!(b["type"], "health_costs");
        assert_eq!(b["isRefund"], true);
        assert!(b["invoice"].as_str().unwrap().starts_with("io.cozy.files:"));
    }
    let b = find(&bills, "2025-11-24", "Camille MARTIN");
    assert_eq!(amount(&b["amount"]), 15.0);
    assert_eq!(amount(&b["originalAmount"]), 50.0);
    assert_eq!(amount(&b["socialSecurityRefund"]), 33.0);
    assert_eq!(amount(&b["thirdPartyRefund"]), 15.0);
    assert_eq!(b["isThirdPartyPayer"], false);
    assert!(b["date"].as_str().unwrap().starts_with("2025-12-02"));
    assert_eq!(b["subtype"], "Consultation ophtalmologiste");
    assert_eq!(b["vendorRef"], "9100006");
    assert_eq!(b["filename"], "2025_12_alan.pdf");

    let pharmacy = find(&bills, "2025-07-21", "Louise MARTIN");
    assert_eq!(amount(&pharmacy["amount"]), 14.91);
    assert_eq!(pharmacy["isThirdPartyPayer"], true);
    assert!(pharmacy.get("groupAmount").is_none());

    for who in ["Louise MARTIN", "Camille MARTIN"] {
        let b = find(&bills, "2025-09-08", who);
        assert_eq!(amount(&b["groupAmount"]), 20.60, "{who}");
        assert!(b["date"].as_str().unwrap().starts_with("2025-09-16"));
    }
    // The two September bills share one statement file.
    assert_eq!(
        find(&bills, "2025-09-08", "Louise MARTIN")["invoice"],
        find(&bills, "2025-09-08", "Camille MARTIN")["invoice"]
    );
    let files = s.h.file_paths().unwrap();
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("/2025_09_alan.pdf")),
        "{files:?}"
    );

    // The second run: one list page per beneficiary, nothing new, no PDF.
    let second = s.run().await.unwrap();
    assert_eq!(second.created(), 0, "{:?}", second.counts);
    assert_eq!(second.files_downloaded, 0);
    assert_eq!(s.sandbox.pdf_downloads(), 4);
    assert_eq!(s.sandbox.list_requests(), 6);
    assert_eq!(s.h.count(BILLS).await.unwrap(), 7);
    assert_eq!(s.h.count(FILES).await.unwrap(), 4);
}

#[tokio::test]
async fn the_bank_credits_of_the_fixture_match_the_bills_paid_to_the_user() {
    let s = Setup::start(Scenario::Normal).await;
    s.run().await.unwrap();
    let bills = s.bills().await;
    let fixture: Value = serde_json::from_str(FIXTURE_JSON).unwrap();
    let credits = fixture["bank_credits"].as_array().unwrap();
    assert_eq!(credits.len(), 5);
    for credit in credits {
        let date = credit["date"].as_str().unwrap();
        let paid: Vec<&Value> = bills
            .iter()
            .filter(|b| {
                b["isThirdPartyPayer"] == false && b["date"].as_str().unwrap().starts_with(date)
            })
            .collect();
        let sum: f64 = paid.iter().map(|b| amount(&b["amount"])).sum();
        assert!((sum - amount(&credit["amount"])).abs() < 0.001, "{date}");
        assert_eq!(paid.len(), credit["care_events"].as_array().unwrap().len());
    }
}

#[tokio::test]
async fn history_months_limits_the_first_run() {
    let now = Utc.with_ymd_and_hms(2026, 1, 15, 8, 0, 0).unwrap();
    let s = Setup::with(Scenario::Normal, Some(now), &[("history_months", "3")]).await;
    let report = s.run().await.unwrap();
    // From 2025-10-15: Camille's #5 and #6, Louise's #7.
    assert_eq!(created(&report, BILLS), 3, "{:?}", report.counts);
    assert_eq!(report.files_downloaded, 2);
    // Each first page already reaches older care: no second page.
    assert_eq!(s.sandbox.list_requests(), 2);
}

#[tokio::test]
async fn a_wrong_password_is_login_failed_and_stores_nothing() {
    let s = Setup::start(Scenario::Normal).await;
    s.sandbox.set_password("another password");
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{err}");
    assert!(!err.message.contains(PASSWORD));
    s.assert_nothing_saved().await;
    assert_eq!(s.sandbox.list_requests(), 0);
}

#[tokio::test]
async fn maintenance_is_maintenance_and_stores_nothing() {
    let s = Setup::start(Scenario::Maintenance).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Maintenance, "{err}");
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_503_everywhere_is_vendor_down_and_stores_nothing() {
    let s = Setup::start(Scenario::Unavailable).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{err}");
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_changed_schema_is_schema_changed_naming_the_path_and_stores_nothing() {
    let s = Setup::start(Scenario::ChangedSchema).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::SchemaChanged, "{err}");
    assert!(err.message.contains("care_acts"), "{}", err.message);
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_429_with_a_short_retry_after_is_waited_out() {
    let s = Setup::start(Scenario::RateLimited).await;
    let report = s.run().await.unwrap();
    assert!(report.retries > 0);
    assert_eq!(created(&report, BILLS), 7);
    assert_eq!(created(&report, FILES), 4);
}

#[tokio::test]
async fn a_429_with_a_long_retry_after_is_vendor_down_and_stores_nothing() {
    let s = Setup::start(Scenario::Normal).await;
    s.sandbox.faults().set_retry_after(3600);
    s.sandbox.faults().rate_limit_next(1);
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{err}");
    assert!(err.message.contains("3600"), "{}", err.message);
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_statement_missing_after_others_were_saved_stores_nothing_partial() {
    let s = Setup::start(Scenario::Normal).await;
    // Camille's bills come first, newest first: December, October and
    // September are downloaded, then July answers 404.
    s.sandbox.withdraw_statement(2025, 7);
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FileDownloadFailed, "{err}");
    assert_eq!(s.sandbox.pdf_downloads(), 3);
    s.assert_nothing_saved().await;
}
