//! End-to-end runs of the Orange konnector against its sandbox: the
//! scripted login in a real headless chromium, then plain HTTP for the
//! bills and their PDFs.
//!
//! Needs Debian's chromium (`apt-get install -y chromium`) for the tests
//! that log in. Without it each of them prints one line and returns,
//! except under `CI`, where it fails. Every test checks that no chromium
//! process is left behind, on success and on failure.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use gleaner_framework::browser::procs;
use gleaner_framework::store::DocStore;
use gleaner_framework::{ErrorCode, KonnectorError, Locator, RunReport};
use gleaner_konnectors::telco::orange::sandbox::data::fixture;
use gleaner_konnectors::telco::orange::sandbox::{
    MAX_FAILED_PASSWORDS, PASSWORD, Sandbox, Scenario, login,
};
use gleaner_konnectors::telco::orange::{Orange, OrangeState};
use gleaner_testing::{Harness, TestAccount};

const BILLS: &str = "io.cozy.bills";
const FILES: &str = "io.cozy.files";
const HISTORIC: &str = "/ecd_wp/facture/historicBills";

/// One browser test at a time: each starts a whole chromium, and the leak
/// checks count processes machine-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

use gleaner_testing::chromium_or_skip;

/// Live chromium processes of every Gleaner browser session.
fn gleaner_chromiums() -> usize {
    procs::session_processes(&std::env::temp_dir().join("gleaner-chromium-"), None).len()
}

struct Setup {
    h: Harness,
    sandbox: Sandbox,
    account: TestAccount,
    chromiums_before: usize,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Setup {
    async fn start(scenario: Scenario, sessions: bool, password: &str) -> Self {
        let serial = SERIAL.lock().await;
        let chromiums_before = gleaner_chromiums();
        let h = Harness::builder().sessions(sessions).build().await.unwrap();
        let sandbox = Sandbox::start(scenario).await.unwrap();
        let account = h
            .account(
                "orange",
                &[("login", &login())],
                &[("password", password)],
                Some(&sandbox.base_url()),
            )
            .await
            .unwrap();
        Self {
            h,
            sandbox,
            account,
            chromiums_before,
            _serial: serial,
        }
    }

    async fn run(&self) -> Result<RunReport, KonnectorError> {
        let result = self.h.run(&Orange::new().unwrap(), &self.account).await;
        // However the run ended, its browser is gone.
        assert!(
            gleaner_chromiums() <= self.chromiums_before,
            "chromium processes left after a run: {} (before: {})",
            gleaner_chromiums(),
            self.chromiums_before
        );
        result
    }

    async fn assert_nothing_saved(&self) {
        self.h.assert_nothing_saved(&self.account).await;
        assert_eq!(self.sandbox.pdf_downloads(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_reads_both_pages_then_a_second_run_adds_nothing() {
    if !chromium_or_skip() {
        return;
    }
    let s = Setup::start(Scenario::Normal, true, PASSWORD).await;
    let started = Instant::now();
    let first = s.run().await.unwrap();
    let first_time = started.elapsed();
    println!("normal run (chromium login): {first_time:?}");

    assert_eq!(first.counts[BILLS].created, 24, "{:?}", first.counts);
    assert_eq!(first.counts[FILES].created, 24, "{:?}", first.counts);
    assert_eq!(first.files_downloaded, 24);
    assert_eq!(s.sandbox.password_posts(), 1);
    // Both contracts' older bills were read once (the second page).
    assert_eq!(s.sandbox.count("GET", HISTORIC), 2);

    let bills = s.h.docs(BILLS).await.unwrap();
    let expected = fixture();
    for contract in &expected.contracts {
        for b in &contract.bills {
            let doc = bills
                .iter()
                .find(|d| d.data["vendorRef"] == b.id.as_str())
                .unwrap_or_else(|| panic!("no bill {}", b.id));
            assert_eq!(doc.data["vendor"], "Orange");
            assert_eq!(doc.data["contractId"], contract.public_number.as_str());
            assert!(
                doc.data["date"].as_str().unwrap().starts_with(&b.date),
                "{}",
                doc.data["date"]
            );
            let amount: f64 = doc.data["amount"].as_f64().unwrap();
            assert!((amount - b.amount as f64 / 100.0).abs() < 1e-9, "{amount}");
            let kind = if contract.public_number.starts_with("06") {
                "phone"
            } else {
                "internet"
            };
            assert_eq!(doc.data["type"], kind);
            assert!(
                doc.data["invoice"]
                    .as_str()
                    .unwrap()
                    .starts_with("io.cozy.files:")
            );
        }
    }
    let state =
        s.h.store()
            .state(s.account.id())
            .await
            .unwrap()
            .unwrap()
            .state;
    let state: OrangeState = serde_json::from_value(state).unwrap();
    assert_eq!(
        state.contracts["9001234567"].newest.to_string(),
        "2025-12-05"
    );

    // The second run reuses the saved session: no browser, no login, one
    // list page per contract, no file.
    let started = Instant::now();
    let second = s.run().await.unwrap();
    println!(
        "second run (saved session, no chromium): {:?}",
        started.elapsed()
    );
    assert_eq!(second.created(), 0, "{:?}", second.counts);
    assert_eq!(second.files_downloaded, 0);
    assert_eq!(s.sandbox.password_posts(), 1, "no second login");
    assert_eq!(s.sandbox.count("GET", HISTORIC), 2, "no older page again");
    assert_eq!(s.sandbox.pdf_downloads(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_saved_session_a_later_run_logs_in_again_and_reads_one_page() {
    if !chromium_or_skip() {
        return;
    }
    let s = Setup::start(Scenario::Normal, false, PASSWORD).await;
    s.run().await.unwrap();
    let second = s.run().await.unwrap();
    assert_eq!(second.created(), 0, "{:?}", second.counts);
    assert_eq!(second.files_downloaded, 0);
    assert_eq!(s.sandbox.password_posts(), 2);
    assert_eq!(s.sandbox.count("GET", HISTORIC), 2);
    assert_eq!(s.sandbox.pdf_downloads(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_login_failed_until_the_account_is_blocked() {
    if !chromium_or_skip() {
        return;
    }
    let s = Setup::start(Scenario::Normal, true, "not the password").await;
    for _ in 0..MAX_FAILED_PASSWORDS {
        let err = s.run().await.unwrap_err();
        assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
        assert!(
            err.message.contains("Mot de passe incorrect"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("not the password"));
    }
    let err = s.run().await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::LoginFailedTooManyAttempts,
        "{}",
        err.message
    );
    s.assert_nothing_saved().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_is_reported_before_any_browser_starts() {
    let s = Setup::start(Scenario::Maintenance, true, PASSWORD).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Maintenance, "{}", err.message);
    assert!(err.message.contains("maintenance"), "{}", err.message);
    assert_eq!(s.sandbox.count("GET", "/static/login.js"), 0, "no browser");
    assert_eq!(s.sandbox.password_posts(), 0);
    s.assert_nothing_saved().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_vendor_down() {
    let s = Setup::start(Scenario::Unavailable, true, PASSWORD).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{}", err.message);
    assert!(err.message.contains("503"), "{}", err.message);
    assert_eq!(s.sandbox.count("GET", "/static/login.js"), 0, "no browser");
    s.assert_nothing_saved().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_retried_and_the_run_succeeds() {
    if !chromium_or_skip() {
        return;
    }
    let s = Setup::start(Scenario::RateLimited, true, PASSWORD).await;
    let report = s.run().await.unwrap();
    assert!(report.retries > 0, "{report:?}");
    assert_eq!(report.counts[BILLS].created, 24, "{:?}", report.counts);
    assert_eq!(report.files_downloaded, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_login_form_is_page_changed_naming_the_selector() {
    if !chromium_or_skip() {
        return;
    }
    let s = Setup::start(Scenario::ChangedMarkup, true, PASSWORD).await;
    let started = Instant::now();
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PageChanged, "{}", err.message);
    assert!(err.message.contains("#login"), "{}", err.message);
    assert!(matches!(
        err.locator.as_deref(),
        Some(Locator::Selector { selector, .. }) if selector == "#login"
    ));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    s.assert_nothing_saved().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_bills_schema_is_schema_changed_naming_the_path() {
    if !chromium_or_skip() {
        return;
    }
    let s = Setup::start(Scenario::ChangedSchema, true, PASSWORD).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::SchemaChanged, "{}", err.message);
    assert!(err.message.contains("billList"), "{}", err.message);
    s.assert_nothing_saved().await;
}
