//! End-to-end runs of the EDF konnector against its sandbox, through the
//! test kit's `Harness` (the runner the CLI uses): the normal run and a
//! second one that saves and downloads nothing, each failure scenario's
//! exact error code with nothing stored, and the e-mailed code of a new
//! device.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{TimeZone, Utc};
use gleaner_framework::clock::ManualClock;
use gleaner_framework::{
    ErrorCode, KonnectorError, RunOptions, RunReport, Secret, TwoFactorChannel, TwoFactorKind,
    TwoFactorRequest, async_trait,
};
use gleaner_konnectors::energy::edf::Edf;
use gleaner_konnectors::energy::edf::fixture::Account as Fixture;
use gleaner_konnectors::energy::edf::routes;
use gleaner_konnectors::energy::edf::sandbox::{EMAIL_HINT, LOGIN, PASSWORD, Sandbox, Scenario};
use gleaner_testing::{Harness, TestAccount};
use rust_decimal::Decimal;

const BILLS: &str = "io.cozy.bills";
const FILES: &str = "io.cozy.files";
const SERIES: &str = "io.cozy.timeseries.energy";

struct Setup {
    h: Harness,
    sandbox: Arc<Sandbox>,
    account: TestAccount,
}

/// A sandbox and a fresh installation whose clock reads 2026-01-20.
async fn setup(scenario: Scenario, sessions: bool, password: &str) -> Setup {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 20, 8, 0, 0).unwrap());
    let h = Harness::builder()
        .clock(clock)
        .sessions(sessions)
        .build()
        .await
        .unwrap();
    let sandbox = Arc::new(Sandbox::start(scenario).await.unwrap());
    let account = h
        .account(
            "edf",
            &[("login", LOGIN)],
            &[("password", password)],
            Some(&sandbox.base_url()),
        )
        .await
        .unwrap();
    Setup {
        h,
        sandbox,
        account,
    }
}

impl Setup {
    async fn run(&self) -> Result<RunReport, KonnectorError> {
        self.h.run(&Edf::new().unwrap(), &self.account).await
    }

    async fn run_with(
        &self,
        channel: Arc<dyn TwoFactorChannel>,
    ) -> Result<RunReport, KonnectorError> {
        let options = RunOptions {
            two_factor: channel,
            ..self.h.run_options()
        };
        self.h
            .run_with(&Edf::new().unwrap(), &self.account, options)
            .await
    }

    async fn assert_nothing_saved(&self) {
        self.h.assert_nothing_saved(&self.account).await;
    }

    async fn fails_with(&self, code: ErrorCode) -> KonnectorError {
        let err = self.run().await.unwrap_err();
        assert_eq!(err.code, code, "{}", err.message);
        self.assert_nothing_saved().await;
        err
    }
}

fn amount(doc: &serde_json::Value) -> Decimal {
    doc["amount"].to_string().parse().unwrap()
}

#[tokio::test]
async fn a_normal_run_saves_bills_pdfs_and_consumption_and_a_second_run_nothing() {
    let s = setup(Scenario::Normal, true, PASSWORD).await;
    let started = Instant::now();
    let report = s.run().await.unwrap();
    let took = started.elapsed();
    println!("normal run: {took:?}, {} requests", report.requests);
    assert!(took.as_secs_f64() < 3.0, "{took:?}");

    // 12 instalments + 2 invoices; 3 PDFs (2 invoices, the schedule);
    // consumption of 2024 (July to December) and 2025: two "pages".
    assert_eq!(report.counts[BILLS].created, 14, "{:?}", report.counts);
    assert_eq!(report.counts[FILES].created, 3, "{:?}", report.counts);
    assert_eq!(report.counts[SERIES].created, 2, "{:?}", report.counts);
    assert_eq!(report.files_downloaded, 3);
    assert_eq!(s.sandbox.pdf_downloads(), 3);
    assert_eq!(
        s.sandbox.count("GET", routes::MONTHLY_ELEC),
        3,
        "one page per year: 2024 to 2026 (three years shown)"
    );

    let bills = s.h.docs(BILLS).await.unwrap();
    let fixture = Fixture::load().unwrap();
    let mut instalments: Vec<_> = bills
        .iter()
        .filter(|b| b.data["subtype"] == "payment_schedule")
        .map(|b| b.data.clone())
        .collect();
    instalments.sort_by_key(|b| b["date"].as_str().unwrap().to_owned());
    assert_eq!(instalments.len(), 12);
    for (i, (bill, fx)) in instalments
        .iter()
        .zip(&fixture.schedule.deadlines)
        .enumerate()
    {
        assert_eq!(bill["vendor"], "EDF");
        assert_eq!(bill["type"], "energy");
        assert_eq!(amount(bill), Decimal::new(6430, 2));
        assert!(
            bill["date"]
                .as_str()
                .unwrap()
                .starts_with(&format!("2025-{:02}-12", i + 1)),
            "{bill}"
        );
        assert_eq!(
            fx.encashment_date.format("%Y-%m-%d").to_string(),
            format!("2025-{:02}-12", i + 1)
        );
        assert_eq!(bill["contractId"], "004012345678");
        assert_eq!(bill["filename"], "2025_EDF_echeancier_E25000012345.pdf");
        assert!(
            bill["invoice"]
                .as_str()
                .unwrap()
                .starts_with("io.cozy.files:")
        );
    }
    let invoice = |n: &str| {
        bills
            .iter()
            .find(|b| b.data["vendorRef"] == n)
            .map(|b| b.data.clone())
            .unwrap()
    };
    let annual = invoice("10248500123");
    assert_eq!(amount(&annual), Decimal::new(4115, 2));
    assert!(annual["date"].as_str().unwrap().starts_with("2025-01-08"));
    assert!(
        annual
            .get("isRefund")
            .is_none_or(|v| v.is_null() || v == false)
    );
    let credit = invoice("10251200987");
    assert_eq!(amount(&credit), Decimal::new(1862, 2));
    assert_eq!(credit["isRefund"], true);
    assert_eq!(credit["filename"], "2025-12-09_EDF_avoir_18.62EUR.pdf");

    let series = s.h.docs(SERIES).await.unwrap();
    let y2025 = series
        .iter()
        .find(|d| {
            d.data["startDate"]
                .as_str()
                .unwrap()
                .starts_with("2025-01-01")
        })
        .unwrap();
    assert_eq!(y2025.data["unit"], "kWh");
    assert_eq!(y2025.data["meterId"], "09876543210123");
    assert_eq!(y2025.data["series"].as_array().unwrap().len(), 12);

    let files = s.h.file_paths().unwrap();
    assert_eq!(files.len(), 3, "{files:?}");

    // Second run: the kept session, nothing new, no PDF, no CSRF token,
    // and the consumption of the current year only.
    let before_init = s.sandbox.count("GET", routes::INIT_PAGE);
    let before_elec = s.sandbox.count("GET", routes::MONTHLY_ELEC);
    let before_login = s.sandbox.count("POST", routes::AUTHENTICATE);
    let again = s.run().await.unwrap();
    for (doctype, c) in &again.counts {
        assert_eq!(c.created, 0, "{doctype}: {:?}", again.counts);
    }
    assert_eq!(again.files_downloaded, 0);
    assert_eq!(s.sandbox.pdf_downloads(), 3);
    assert_eq!(s.sandbox.count("GET", routes::INIT_PAGE), before_init);
    assert_eq!(
        s.sandbox.count("GET", routes::MONTHLY_ELEC),
        before_elec + 1
    );
    assert_eq!(
        s.sandbox.count("POST", routes::AUTHENTICATE),
        before_login,
        "the session was reused"
    );
    assert_eq!(s.h.count(BILLS).await.unwrap(), 14);
}

#[tokio::test]
async fn a_kept_session_that_died_is_replaced_by_a_new_login() {
    let s = setup(Scenario::Normal, true, PASSWORD).await;
    s.run().await.unwrap();
    s.sandbox
        .advance_clock(std::time::Duration::from_secs(31 * 60));
    let before = s.sandbox.count("POST", routes::AUTHENTICATE);
    let again = s.run().await.unwrap();
    assert!(
        again.counts.values().all(|c| c.created == 0),
        "{:?}",
        again.counts
    );
    assert_eq!(again.files_downloaded, 0);
    assert_eq!(s.sandbox.count("POST", routes::AUTHENTICATE), before + 4);
}

#[tokio::test]
async fn without_a_kept_session_the_second_run_logs_in_and_still_saves_nothing() {
    let s = setup(Scenario::Normal, false, PASSWORD).await;
    s.run().await.unwrap();
    let again = s.run().await.unwrap();
    assert!(
        again.counts.values().all(|c| c.created == 0),
        "{:?}",
        again.counts
    );
    assert_eq!(again.files_downloaded, 0);
    assert_eq!(
        s.sandbox.count("POST", routes::AUTHENTICATE),
        8,
        "4 steps per login"
    );
}

#[tokio::test]
async fn a_wrong_password_is_login_failed_and_the_fifth_locks_the_account() {
    let s = setup(Scenario::Normal, false, "not the password").await;
    for _ in 0..4 {
        let err = s.fails_with(ErrorCode::LoginFailed).await;
        assert!(
            err.message.contains("Mot de passe incorrect"),
            "{}",
            err.message
        );
    }
    let err = s.fails_with(ErrorCode::LoginFailedTooManyAttempts).await;
    assert!(err.message.contains("verrouill"), "{}", err.message);
}

#[tokio::test]
async fn an_unknown_login_is_login_failed() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 20, 8, 0, 0).unwrap());
    let h = Harness::builder()
        .clock(clock)
        .sessions(false)
        .build()
        .await
        .unwrap();
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let account = h
        .account(
            "edf",
            &[("login", "nobody@example.org")],
            &[("password", PASSWORD)],
            Some(&sandbox.base_url()),
        )
        .await
        .unwrap();
    let err = h.run(&Edf::new().unwrap(), &account).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
    assert!(h.counts().await.unwrap().is_empty());
}

#[tokio::test]
async fn maintenance_is_maintenance_with_nothing_saved() {
    let s = setup(Scenario::Maintenance, false, PASSWORD).await;
    let err = s.fails_with(ErrorCode::Maintenance).await;
    assert!(err.message.contains("maintenance"), "{}", err.message);
}

#[tokio::test]
async fn a_503_is_vendor_down_with_nothing_saved() {
    let s = setup(Scenario::Unavailable, false, PASSWORD).await;
    let err = s.fails_with(ErrorCode::VendorDown).await;
    assert!(err.message.contains("503"), "{}", err.message);
}

#[tokio::test]
async fn a_changed_schema_is_schema_changed_naming_the_field_with_nothing_saved() {
    let s = setup(Scenario::ChangedSchema, false, PASSWORD).await;
    let err = s.fails_with(ErrorCode::SchemaChanged).await;
    assert!(err.message.contains("listOfbills"), "{}", err.message);
}

#[tokio::test]
async fn rate_limits_with_retry_after_are_waited_out() {
    let s = setup(Scenario::RateLimited, false, PASSWORD).await;
    let report = s.run().await.unwrap();
    assert!(report.retries > 0, "{report:?}");
    assert_eq!(report.counts[BILLS].created, 14, "{:?}", report.counts);
    assert_eq!(report.counts[FILES].created, 3, "{:?}", report.counts);
    assert_eq!(report.counts[SERIES].created, 2, "{:?}", report.counts);
}

/// A person reading codes from the sandbox's outbox.
struct Person {
    sandbox: Arc<Sandbox>,
    wrong_first: Mutex<VecDeque<bool>>,
    asked: Mutex<Vec<TwoFactorRequest>>,
}

impl Person {
    fn new(sandbox: &Arc<Sandbox>, wrong_first: &[bool]) -> Arc<Self> {
        Arc::new(Self {
            sandbox: Arc::clone(sandbox),
            wrong_first: Mutex::new(wrong_first.iter().copied().collect()),
            asked: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl TwoFactorChannel for Person {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        self.asked.lock().unwrap().push(request.clone());
        let wrong = self
            .wrong_first
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(false);
        let code = self.sandbox.last_email_code().expect("a code was e-mailed");
        Ok(Secret::new(if wrong {
            if code == "000000" {
                "111111".to_owned()
            } else {
                "000000".to_owned()
            }
        } else {
            code
        }))
    }
}

#[tokio::test]
async fn a_new_device_gives_the_emailed_code_and_is_trusted_afterwards() {
    let s = setup(Scenario::TwoFactor, true, PASSWORD).await;
    let person = Person::new(&s.sandbox, &[true, false]);
    let report = s.run_with(person.clone()).await.unwrap();
    assert_eq!(report.counts[BILLS].created, 14);
    let asked = person.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "a wrong code, then the right one");
    assert_eq!(asked[0].kind, TwoFactorKind::Email);
    assert!(
        asked[0].hint.as_deref().unwrap_or("").contains(EMAIL_HINT),
        "{:?}",
        asked[0].hint
    );
    assert_eq!(asked[1].attempt, 2);
    assert_eq!(s.sandbox.outbox().len(), 1);

    // Later runs are not asked again (the kept session and device token).
    let again = s.run_with(Person::new(&s.sandbox, &[])).await.unwrap();
    assert!(again.counts.values().all(|c| c.created == 0));
    assert_eq!(person.asked.lock().unwrap().len(), 2);
    assert_eq!(s.sandbox.outbox().len(), 1);
}

#[tokio::test]
async fn a_new_device_in_an_unattended_run_needs_the_user_and_saves_nothing() {
    let s = setup(Scenario::TwoFactor, false, PASSWORD).await;
    let err = s.fails_with(ErrorCode::UserActionNeededTwofaExpired).await;
    assert!(!err.message.is_empty());
}

#[tokio::test]
async fn three_wrong_codes_are_wrong_twofa_code_with_nothing_saved() {
    let s = setup(Scenario::TwoFactor, false, PASSWORD).await;
    let err = s
        .run_with(Person::new(&s.sandbox, &[true, true, true, true]))
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::UserActionNeededWrongTwofaCode,
        "{}",
        err.message
    );
    s.assert_nothing_saved().await;
}
