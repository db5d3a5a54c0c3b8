//! End-to-end runs of the Ameli konnector against its sandbox, on the test
//! kit's `Harness`: the success run's bills and statements (the shared
//! health table's Ameli column), an incremental second run that lists one
//! short page and saves and downloads nothing, each failure scenario's
//! exact error code with nothing stored, and the emailed security code of
//! a new device.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gleaner_framework::store::DocStore;
use gleaner_framework::twofa::Unattended;
use gleaner_framework::{
    ErrorCode, KonnectorError, RunOptions, RunReport, Secret, TwoFactorChannel, TwoFactorKind,
    TwoFactorRequest, async_trait,
};
use gleaner_konnectors::insurance::ameli::Ameli;
use gleaner_konnectors::insurance::ameli::sandbox::{
    EMAIL_HINT, LOGIN, MAX_FAILED_LOGINS, NIR, PASSWORD, PAYMENTS_JSON, Sandbox, Scenario,
};
use gleaner_testing::{Harness, TestAccount};
use rust_decimal::Decimal;
use serde_json::Value;

const BILLS: &str = "io.cozy.bills";
const FILES: &str = "io.cozy.files";

struct Setup {
    h: Harness,
    sandbox: Arc<Sandbox>,
    account: TestAccount,
}

async fn setup(scenario: Scenario) -> Setup {
    let h = Harness::builder().sessions(false).build().await.unwrap();
    let sandbox = Arc::new(Sandbox::start(scenario).await.unwrap());
    let account = h
        .account(
            "ameli",
            &[("login", NIR)],
            &[("password", PASSWORD)],
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
        self.h.run(&Ameli::new().unwrap(), &self.account).await
    }

    async fn run_as(&self, account: &TestAccount) -> Result<RunReport, KonnectorError> {
        self.h.run(&Ameli::new().unwrap(), account).await
    }

    async fn run_with(
        &self,
        two_factor: Arc<dyn TwoFactorChannel>,
    ) -> Result<RunReport, KonnectorError> {
        let options = RunOptions {
            two_factor,
            ..self.h.run_options()
        };
        self.h
            .run_with(&Ameli::new().unwrap(), &self.account, options)
            .await
    }

    /// No document, no state, no file (staging folders included).
    async fn assert_nothing_saved(&self) {
        self.h.assert_nothing_saved(&self.account).await;
    }
}

fn fixture() -> Value {
    serde_json::from_str(PAYMENTS_JSON).unwrap()
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

/// `amount` of a stored bill, as written (a JSON number or string).
fn money(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).unwrap(),
        other => Decimal::from_str(&other.to_string()).unwrap(),
    }
}

#[tokio::test]
async fn a_normal_run_saves_every_act_with_its_statement_and_a_second_run_nothing() {
    let s = setup(Scenario::Normal).await;
    let started = Instant::now();
    let report = s.run().await.unwrap();
    let elapsed = started.elapsed();
    println!("normal run: {elapsed:?}");
    assert!(elapsed.as_secs_f64() < 3.0, "the run took {elapsed:?}");

    // 7 acts in 6 payments; the two acts of 12/09 share one statement.
    assert_eq!(report.counts[BILLS].created, 7, "{:?}", report.counts);
    assert_eq!(report.counts[FILES].created, 6, "{:?}", report.counts);
    assert_eq!(report.files_downloaded, 6);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // Two list pages (4 + 2 payments), six details, six PDFs.
    assert_eq!(s.sandbox.list_pages(), 2);
    assert_eq!(s.sandbox.details(), 6);
    assert_eq!(s.sandbox.pdf_downloads(), 6);

    // Every act of the fixture is a bill with the shared table's values.
    let bills = s.h.docs(BILLS).await.unwrap();
    let files = s.h.docs(FILES).await.unwrap();
    for payment in fixture()["payments"].as_array().unwrap() {
        let acts = payment["acts"].as_array().unwrap();
        for act in acts {
            let bill = bills
                .iter()
                .map(|b| &b.data)
                .find(|b| {
                    b["beneficiary"] == act["beneficiary"]
                        && b["originalDate"]
                            .as_str()
                            .unwrap()
                            .starts_with(act["care_date"].as_str().unwrap())
                })
                .unwrap_or_else(|| panic!("no bill for {act}"));
            assert_eq!(bill["vendor"], "Ameli");
            assert_eq!(bill["type"], "health_costs");
            assert_eq!(bill["isRefund"], true);
            assert_eq!(money(&bill["amount"]), dec(&act["refund"]), "{act}");
            assert_eq!(money(&bill["socialSecurityRefund"]), dec(&act["refund"]));
            assert_eq!(money(&bill["originalAmount"]), dec(&act["paid"]));
            assert!(
                bill["date"]
                    .as_str()
                    .unwrap()
                    .starts_with(payment["date"].as_str().unwrap())
            );
            assert_eq!(
                bill["isThirdPartyPayer"],
                payment["nature"] == "PAIEMENT_A_UN_TIERS"
            );
            assert_eq!(bill["vendorRef"], payment["id"]);
            if acts.len() > 1 {
                assert_eq!(money(&bill["groupAmount"]), dec(&payment["amount"]));
            } else {
                assert!(bill.get("groupAmount").is_none_or(Value::is_null), "{bill}");
            }
            // Linked to its payment's statement.
            let file_id = bill["invoice"]
                .as_str()
                .unwrap()
                .strip_prefix("io.cozy.files:")
                .unwrap();
            let file = files.iter().find(|f| f.id == file_id).unwrap();
            assert_eq!(file.data["mime"], "application/pdf");
        }
    }
    let names: Vec<_> =
        s.h.file_paths()
            .unwrap()
            .into_iter()
            .filter_map(|p| p.rsplit('/').next().map(str::to_owned))
            .collect();
    for name in [
        "20250912_ameli_remboursement_soins_39.40EUR.pdf",
        "20250724_ameli_tiers_payant_27.69EUR.pdf",
        "20251208_ameli_remboursement_soins_33.60EUR.pdf",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }

    // The cursor: the newest payment's day and its id.
    let state = s.h.store().state(s.account.id()).await.unwrap().unwrap();
    let state = serde_json::to_string(&state).unwrap();
    assert!(state.contains("2025-12-08"), "{state}");
    assert!(state.contains("8F3A2C91D4E07B55A1C6"), "{state}");

    // Second run: one short list page from the cursor, no detail, no file.
    let second = s.run().await.unwrap();
    assert_eq!(second.created(), 0, "{:?}", second.counts);
    assert_eq!(second.files_downloaded, 0);
    assert_eq!(s.sandbox.list_pages(), 3);
    assert_eq!(s.sandbox.details(), 6);
    assert_eq!(s.sandbox.pdf_downloads(), 6);
    assert_eq!(s.h.count(BILLS).await.unwrap(), 7);
}

#[tokio::test]
async fn a_wrong_password_is_login_failed_and_saves_nothing() {
    let s = setup(Scenario::Normal).await;
    let wrong = s.account.with_secret("password", "not the password");
    let err = s.run_as(&wrong).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
    assert!(
        err.message.contains("ne correspondent pas"),
        "{}",
        err.message
    );
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn the_account_is_blocked_after_too_many_wrong_passwords() {
    let s = setup(Scenario::Normal).await;
    let wrong = s.account.with_secret("password", "not the password");
    for _ in 0..MAX_FAILED_LOGINS {
        let err = s.run_as(&wrong).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
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

#[tokio::test]
async fn maintenance_is_reported_and_saves_nothing() {
    let s = setup(Scenario::Maintenance).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Maintenance, "{}", err.message);
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_503_is_vendor_down_and_saves_nothing() {
    let s = setup(Scenario::Unavailable).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{}", err.message);
    assert!(err.message.contains("503"), "{}", err.message);
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn rate_limiting_with_retry_after_is_retried_and_the_run_succeeds() {
    let s = setup(Scenario::RateLimited).await;
    let report = s.run().await.unwrap();
    assert!(report.retries > 0, "{report:?}");
    assert_eq!(report.counts[BILLS].created, 7, "{:?}", report.counts);
    assert_eq!(report.files_downloaded, 6);
}

#[tokio::test]
async fn changed_markup_is_page_changed_naming_the_selector() {
    let s = setup(Scenario::ChangedMarkup).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PageChanged, "{}", err.message);
    assert!(err.message.contains("ul#unordered_list"), "{}", err.message);
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_changed_schema_is_schema_changed_naming_the_field() {
    let s = setup(Scenario::ChangedSchema).await;
    let err = s.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::SchemaChanged, "{}", err.message);
    assert!(err.message.contains("tableauPaiement"), "{}", err.message);
    s.assert_nothing_saved().await;
}

/// What the person does when asked for the code.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Reads the code from the mailbox.
    FromOutbox,
    /// Types another code.
    Wrong,
}

/// A person answering from the sandbox's outbox.
struct Person {
    sandbox: Arc<Sandbox>,
    answers: Mutex<VecDeque<Answer>>,
    asked: Mutex<Vec<TwoFactorRequest>>,
}

impl Person {
    fn new(sandbox: &Arc<Sandbox>, answers: &[Answer]) -> Arc<Self> {
        Arc::new(Self {
            sandbox: Arc::clone(sandbox),
            answers: Mutex::new(answers.iter().copied().collect()),
            asked: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl TwoFactorChannel for Person {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        self.asked.lock().unwrap().push(request.clone());
        let answer = self.answers.lock().unwrap().pop_front().unwrap();
        let code = self.sandbox.last_email_code().unwrap();
        Ok(Secret::new(match answer {
            Answer::FromOutbox => code,
            Answer::Wrong => if code == "000000" { "111111" } else { "000000" }.to_owned(),
        }))
    }
}

#[tokio::test]
async fn a_new_device_unattended_is_user_action_needed_and_saves_nothing() {
    let s = setup(Scenario::NewDevice).await;
    let err = s.run_with(Arc::new(Unattended)).await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::UserActionNeededTwofaExpired,
        "{}",
        err.message
    );
    assert_eq!(s.sandbox.outbox().len(), 1, "the code was emailed");
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_new_device_answers_the_emailed_code_after_a_wrong_one() {
    let s = setup(Scenario::NewDevice).await;
    let person = Person::new(&s.sandbox, &[Answer::Wrong, Answer::FromOutbox]);
    let report = s.run_with(person.clone()).await.unwrap();
    assert_eq!(report.counts[BILLS].created, 7, "{:?}", report.counts);
    let asked = person.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].kind, TwoFactorKind::Email);
    assert_eq!(asked[0].hint.as_deref(), Some(EMAIL_HINT));
    assert_eq!(asked[1].attempt, 2);
    // The code never reaches the logs.
    let code = s.sandbox.last_email_code().unwrap();
    assert!(
        !s.h.logs().contains(&code),
        "the code {code} is in the logs"
    );
}

#[tokio::test]
async fn three_wrong_codes_are_wrong_twofa_code_and_save_nothing() {
    let s = setup(Scenario::NewDevice).await;
    let person = Person::new(&s.sandbox, &[Answer::Wrong, Answer::Wrong, Answer::Wrong]);
    let err = s.run_with(person).await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::UserActionNeededWrongTwofaCode,
        "{}",
        err.message
    );
    s.assert_nothing_saved().await;
}

#[tokio::test]
async fn the_sandbox_definition_lists_normal_first_and_starts_every_scenario() {
    let def = gleaner_konnectors::insurance::ameli::sandbox::definition();
    assert_eq!(def.slug, "ameli");
    assert_eq!(def.scenarios[0].name, "normal");
    for info in def.scenarios {
        let running = def
            .launch(gleaner_sandbox_kit::StartOptions {
                scenario: Some(info.name.to_owned()),
                port: None,
            })
            .await
            .unwrap();
        assert_eq!(running.scenario, info.name);
        assert_eq!(running.fields, vec![("login".to_owned(), LOGIN.to_owned())]);
    }
}

#[tokio::test]
async fn the_history_depth_bounds_the_first_window() {
    // Today is after 2026-05: three months back reach no 2025 payment.
    let s = setup(Scenario::Normal).await;
    let short =
        s.h.account(
            "ameli",
            &[("login", LOGIN), ("history_months", "3")],
            &[("password", PASSWORD)],
            Some(&s.sandbox.base_url()),
        )
        .await
        .unwrap();
    let report = s.run_as(&short).await.unwrap();
    assert_eq!(report.created(), 0, "{:?}", report.counts);
    assert_eq!(s.sandbox.list_pages(), 1);
    assert_eq!(s.sandbox.details(), 0);

    // A value that is not a number of months: the default, and a warning.
    let odd =
        s.h.account(
            "ameli",
            &[("login", LOGIN), ("history_months", "two years")],
            &[("password", PASSWORD)],
            Some(&s.sandbox.base_url()),
        )
        .await
        .unwrap();
    let report = s.run_as(&odd).await.unwrap();
    assert_eq!(report.counts[BILLS].created, 7, "{:?}", report.counts);
    assert!(
        report.warnings.iter().any(|w| w.contains("history_months")),
        "{:?}",
        report.warnings
    );
}
