//! The NextGenPSD2 konnector against its sandbox bank, through the runner
//! as the CLI runs it (the test kit's `Harness`: SQLite store, vault,
//! sessions on, a manual clock shared with the sandbox).
//!
//! The person is played by [`Person`]: a second-factor channel that opens
//! the `scaRedirect` link it is given (one GET, which approves the consent
//! on the sandbox's page), as someone clicking it would. Runs without a
//! person use the runner's default channel (unattended). Every failing
//! scenario asserts its exact error code and that nothing was stored or
//! changed.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use gleaner_framework::clock::ManualClock;
use gleaner_framework::store::DocStore;
use gleaner_framework::twofa::Unattended;
use gleaner_framework::{
    ErrorCode, KonnectorError, RunOptions, RunReport, Secret, TwoFactorChannel, TwoFactorKind,
    TwoFactorRequest, async_trait,
};
use gleaner_konnectors::bank::nextgenpsd2::NextGenPsd2;
use gleaner_konnectors::bank::nextgenpsd2::sandbox::{
    INSTITUTION, PSU_ID, Sandbox, ScaMode, Scenario,
};
use gleaner_testing::{Harness, TestAccount};
use serde_json::Value;

const ACCOUNTS: &str = "io.cozy.bank.accounts";
const OPERATIONS: &str = "io.cozy.bank.operations";
const BALANCES: &str = "io.cozy.bank.balancehistories";
const CHECKING: &str = "3b9f1c2e-cc01-4c7a-9a51-5d8e0c1a0001";

/// A person who opens the SCA link they are shown.
#[derive(Default)]
struct Person {
    asked: Mutex<Vec<TwoFactorRequest>>,
}

#[async_trait]
impl TwoFactorChannel for Person {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        self.asked.lock().unwrap().push(request.clone());
        if let Some(link) = &request.hint {
            let page = reqwest::get(link).await.unwrap();
            assert!(
                page.status().is_success(),
                "the SCA page answered {}",
                page.status()
            );
        }
        Ok(Secret::new(""))
    }
}

impl Person {
    fn asked(&self) -> Vec<TwoFactorRequest> {
        self.asked.lock().unwrap().clone()
    }
}

/// 2026-01-21 10:00 UTC: the month's card payment (the 20th) is pending.
fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 21, 10, 0, 0).unwrap()
}

struct Bank {
    h: Harness,
    sandbox: Sandbox,
    account: TestAccount,
    clock: ManualClock,
    person: Arc<Person>,
}

impl Bank {
    async fn start(scenario: Scenario) -> Self {
        Self::start_with(scenario, &[("psu_id", PSU_ID), ("bank_name", INSTITUTION)]).await
    }

    async fn start_with(scenario: Scenario, fields: &[(&str, &str)]) -> Self {
        let clock = ManualClock::new(start_time());
        let h = Harness::builder()
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        let sandbox = Sandbox::start_with_clock(scenario, h.clock())
            .await
            .unwrap();
        let account = h
            .account("nextgenpsd2", fields, &[], Some(&sandbox.base_url()))
            .await
            .unwrap();
        Self {
            h,
            sandbox,
            account,
            clock,
            person: Arc::new(Person::default()),
        }
    }

    /// A run with the person there to approve.
    async fn attended(&self) -> Result<RunReport, KonnectorError> {
        let options = RunOptions {
            two_factor: Arc::clone(&self.person) as Arc<dyn TwoFactorChannel>,
            ..self.h.run_options()
        };
        self.h
            .run_with(&NextGenPsd2::new().unwrap(), &self.account, options)
            .await
    }

    /// A run nobody watches (the daemon's nightly run).
    async fn unattended(&self) -> Result<RunReport, KonnectorError> {
        let options = RunOptions {
            two_factor: Arc::new(Unattended),
            ..self.h.run_options()
        };
        self.h
            .run_with(&NextGenPsd2::new().unwrap(), &self.account, options)
            .await
    }

    async fn docs(&self, doctype: &str) -> Vec<Value> {
        self.h
            .docs(doctype)
            .await
            .unwrap()
            .into_iter()
            .map(|d| {
                let mut v = d.data;
                v["_id"] = Value::String(d.id);
                v
            })
            .collect()
    }

    /// What the store holds: counts and the account's state.
    async fn snapshot(&self) -> (BTreeMap<String, u64>, Option<Value>) {
        let counts = self.h.counts().await.unwrap();
        let state = self
            .h
            .store()
            .state(self.account.id())
            .await
            .unwrap()
            .map(|s| s.state);
        (counts, state)
    }

    async fn assert_nothing_stored(&self) {
        let (counts, state) = self.snapshot().await;
        assert!(counts.is_empty(), "documents were stored: {counts:?}");
        assert!(state.is_none(), "a state was stored: {state:?}");
    }
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn find<'a>(ops: &'a [Value], id: &str) -> Option<&'a Value> {
    ops.iter().find(|o| o["vendorId"] == id)
}

/// Booked operations of the window plus the pending ones, per the ledger.
fn expected_operations(sandbox: &Sandbox, from: NaiveDate, today: NaiveDate) -> usize {
    sandbox
        .ledger()
        .txs
        .iter()
        .filter(|t| t.booked_on.is_some_and(|d| from <= d && d <= today) || t.pending_on(today))
        .count()
}

#[tokio::test]
async fn a_first_run_has_the_consent_approved_then_imports_everything() {
    let bank = Bank::start(Scenario::Normal).await;
    let report = bank.attended().await.unwrap();

    // One consent, approved through the second-factor channel with the
    // bank's link as the hint.
    assert_eq!(bank.sandbox.consents_created(), 1);
    let asked = bank.person.asked();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].kind, TwoFactorKind::Redirect);
    let link = asked[0].hint.as_deref().unwrap();
    assert!(link.starts_with(&bank.sandbox.base_url()), "{link}");
    assert_eq!(bank.sandbox.sca_visits().len(), 1);
    assert_eq!(bank.sandbox.consent_statuses(), ["valid"]);

    // Two accounts, the checking account with its balance of yesterday.
    let accounts = bank.docs(ACCOUNTS).await;
    assert_eq!(accounts.len(), 2);
    let checking = accounts.iter().find(|a| a["vendorId"] == CHECKING).unwrap();
    assert_eq!(checking["label"], "Compte courant");
    assert_eq!(checking["type"], "checkings");
    assert_eq!(checking["institutionLabel"], "Banque Exemple");
    assert_eq!(checking["iban"], "FR7612739000700001234560110");
    assert_eq!(checking["currency"], "EUR");
    let yesterday = day("2026-01-20");
    let balance = bank.sandbox.ledger().booked_balance(0, yesterday);
    assert_eq!(checking["balance"].to_string(), balance.to_string());
    let savings = accounts.iter().find(|a| a["vendorId"] != CHECKING).unwrap();
    assert_eq!(savings["type"], "savings");

    // A year of operations (the default history), all pages, and the
    // pending card payment.
    let ops = bank.docs(OPERATIONS).await;
    let today = day("2026-01-21");
    let from = today - TimeDelta::days(365);
    assert_eq!(ops.len(), expected_operations(&bank.sandbox, from, today));
    assert!(
        bank.sandbox
            .count("GET", &format!("/v1/accounts/{CHECKING}/transactions"))
            >= 3,
        "the checking account's transactions come in several pages"
    );
    let pending = find(&ops, "P-BIS-20260120").unwrap();
    assert_eq!(pending["isComing"], true);
    assert_eq!(pending["amount"].to_string(), "-42.50");
    assert_eq!(pending["account"], checking["_id"]);
    let debit = find(&ops, "FM-12345678-20251202").unwrap();
    assert_eq!(
        debit["label"],
        "PRLV SEPA FREE MOBILE LIGNE 12345678 FACTURE 12/2025"
    );
    assert_eq!(debit["type"], "direct debit");
    assert_eq!(debit["amount"].to_string(), "-19.99");
    assert_eq!(debit["isComing"], false);

    // Daily balances, Cozy-style, ending with yesterday's booked balance.
    let histories = bank.docs(BALANCES).await;
    assert!(histories.len() >= 2, "{histories:?}");
    let this_year = histories
        .iter()
        .find(|h| h["year"] == 2026 && h["vendorAccountId"] == CHECKING)
        .unwrap();
    assert_eq!(
        this_year["balances"]["2026-01-20"].to_string(),
        balance.to_string()
    );
    assert_eq!(
        this_year["relationships"]["account"]["data"]["_id"],
        checking["_id"]
    );

    // Every request had its own UUID; the person took part, so the data
    // calls carried PSU-IP-Address.
    let ids = bank.sandbox.request_ids();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    assert!(bank.sandbox.ais_calls().iter().all(|(_, psu)| *psu));
    assert!(report.created() > 0);
}

#[tokio::test]
async fn later_runs_reuse_the_consent_and_book_the_pending_payment_in_place() {
    let bank = Bank::start(Scenario::Normal).await;
    bank.attended().await.unwrap();
    let before = bank.docs(OPERATIONS).await;
    let pending_id = find(&before, "P-BIS-20260120").unwrap()["_id"].clone();
    let calls_before = bank.sandbox.ais_calls().len();

    // Two days later, nobody watching: the kept consent is used.
    bank.clock.advance(TimeDelta::days(2));
    bank.unattended().await.unwrap();
    assert_eq!(bank.sandbox.consents_created(), 1);
    assert_eq!(bank.person.asked().len(), 1);
    // Without the person, no PSU-IP-Address (the calls count against the
    // consent's daily quota).
    assert!(
        bank.sandbox.ais_calls()[calls_before..]
            .iter()
            .all(|(_, psu)| !*psu)
    );

    // The card payment booked with its tip, under another id and label:
    // the pending document was updated, not duplicated.
    let after = bank.docs(OPERATIONS).await;
    assert!(find(&after, "P-BIS-20260120").is_none());
    let booked = find(&after, "BIS-20260120").unwrap();
    assert_eq!(booked["_id"], pending_id);
    assert_eq!(booked["isComing"], false);
    assert_eq!(booked["amount"].to_string(), "-44.50");
    assert_eq!(booked["label"], "CB LE BISTROT 20/01 POURBOIRE INCL");
    let new_bookings = bank
        .sandbox
        .ledger()
        .txs
        .iter()
        .filter(|t| {
            t.account < 2
                && t.booked_on
                    .is_some_and(|d| d > day("2026-01-21") && d <= day("2026-01-23"))
                && !t.id.starts_with("BIS-")
        })
        .count();
    assert_eq!(after.len(), before.len() + new_bookings);

    // Once more the same day: nothing new.
    let again = bank.unattended().await.unwrap();
    assert_eq!(again.created(), 0, "{:?}", again.counts);
    assert_eq!(bank.docs(OPERATIONS).await.len(), after.len());
}

#[tokio::test]
async fn a_consent_past_its_90_days_is_renewed_with_the_person_and_reported_without() {
    let bank = Bank::start(Scenario::Normal).await;
    bank.attended().await.unwrap();
    bank.clock.advance(TimeDelta::days(91));
    let before = bank.snapshot().await;

    let err = bank.unattended().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UserActionNeededScaRequired, "{err}");
    assert!(
        err.message.contains("ended on 2026-04-20"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("gleaner "), "{}", err.message);
    assert_eq!(bank.snapshot().await, before, "nothing changed");

    // The person is there: a new consent, approved, and the run goes on.
    bank.attended().await.unwrap();
    assert_eq!(bank.person.asked().len(), 2);
    assert!(bank.snapshot().await.0[OPERATIONS] > before.0[OPERATIONS]);
}

#[tokio::test]
async fn a_consent_the_bank_expired_or_revoked_early_needs_the_person() {
    for (what, code) in [
        ("expired", "CONSENT_EXPIRED"),
        ("revoked", "CONSENT_INVALID"),
    ] {
        let bank = Bank::start(Scenario::Normal).await;
        bank.attended().await.unwrap();
        bank.clock.advance(TimeDelta::days(1));
        if what == "expired" {
            bank.sandbox.expire_consents();
        } else {
            bank.sandbox.revoke_consents();
        }
        let before = bank.snapshot().await;
        let err = bank.unattended().await.unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::UserActionNeededScaRequired,
            "{what}: {err}"
        );
        assert!(err.message.contains(code), "{what}: {}", err.message);
        assert_eq!(bank.snapshot().await, before, "{what}: nothing changed");

        // Attended, the refused consent is replaced in the same run.
        bank.attended().await.unwrap();
        assert_eq!(bank.sandbox.consents_created(), 3, "{what}");
        assert_eq!(bank.person.asked().len(), 2, "{what}");
        // And the new one is kept for the next run.
        bank.unattended().await.unwrap();
        assert_eq!(bank.sandbox.consents_created(), 3, "{what}");
    }
}

#[tokio::test]
async fn a_first_run_nobody_watches_waits_for_the_person_and_stores_nothing() {
    let bank = Bank::start(Scenario::Normal).await;
    let err = bank.unattended().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UserActionNeededTwofaExpired, "{err}");
    assert_eq!(bank.sandbox.consent_statuses(), ["received"]);
    bank.assert_nothing_stored().await;
}

#[tokio::test]
async fn the_harness_channel_follows_the_sandbox_link_as_the_demo_does() {
    // The kit's default channel (LoopbackLinks) opens a loopback SCA link
    // itself: the conformance suite and `gleaner demo` need nobody.
    let bank = Bank::start(Scenario::Normal).await;
    bank.h
        .run(&NextGenPsd2::new().unwrap(), &bank.account)
        .await
        .unwrap();
    assert_eq!(bank.sandbox.sca_visits().len(), 1);
    assert_eq!(bank.sandbox.consent_statuses(), ["valid"]);
    assert_eq!(bank.h.count(ACCOUNTS).await.unwrap(), 2);
}

#[tokio::test]
async fn an_exempted_consent_asks_nobody() {
    let bank = Bank::start(Scenario::Normal).await;
    bank.sandbox.set_sca(ScaMode::Exempt);
    bank.unattended().await.unwrap();
    assert!(bank.sandbox.sca_visits().is_empty());
    assert_eq!(bank.h.count(ACCOUNTS).await.unwrap(), 2);
}

#[tokio::test]
async fn the_consent_is_kept_sealed() {
    let bank = Bank::start(Scenario::Normal).await;
    bank.attended().await.unwrap();
    let consent = bank.sandbox.sca_visits()[0].clone();
    // URLs of the consent's own calls hold its id; the logs as written
    // (masked like every secret) do not.
    let written = gleaner_framework::redact::scrub(&bank.h.logs().text()).into_owned();
    assert!(!written.contains(&consent), "the consent id is in the logs");
    for file in bank.h.data_files().unwrap() {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&consent),
            "{} holds the consent id",
            file.display()
        );
    }
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let bank = Bank::start(Scenario::RateLimited).await;
    let report = bank.attended().await.unwrap();
    assert!(report.retries > 0);
    let today = day("2026-01-21");
    assert_eq!(
        bank.docs(OPERATIONS).await.len(),
        expected_operations(&bank.sandbox, today - TimeDelta::days(365), today)
    );
}

#[tokio::test]
async fn an_unavailable_bank_is_vendor_down() {
    let bank = Bank::start(Scenario::Unavailable).await;
    let err = bank.attended().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{err}");
    bank.assert_nothing_stored().await;
}

#[tokio::test]
async fn consents_the_bank_refuses_at_once_need_the_person() {
    for scenario in [Scenario::ExpiredConsent, Scenario::RevokedConsent] {
        let bank = Bank::start(scenario).await;
        let err = bank.attended().await.unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::UserActionNeededScaRequired,
            "{scenario:?}: {err}"
        );
        bank.assert_nothing_stored().await;
    }
}

#[tokio::test]
async fn a_rejected_approval_is_login_failed() {
    let bank = Bank::start(Scenario::ScaRejected).await;
    let err = bank.attended().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{err}");
    assert_eq!(bank.sandbox.consent_statuses(), ["rejected"]);
    bank.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_used_up_daily_quota_is_vendor_down_until_midnight() {
    let bank = Bank::start(Scenario::AccessExceeded).await;
    // With the person there, the calls are not counted.
    bank.attended().await.unwrap();
    let before = bank.snapshot().await;
    let err = bank.unattended().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{err}");
    // 10:00 → midnight.
    assert_eq!(
        err.retry_after,
        Some(std::time::Duration::from_secs(14 * 3600))
    );
    assert_eq!(bank.snapshot().await, before, "nothing changed");
}

#[tokio::test]
async fn a_changed_interface_names_the_json_path() {
    let bank = Bank::start(Scenario::SchemaChanged).await;
    let err = bank.attended().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::SchemaChanged, "{err}");
    assert!(err.message.contains("transactionAmount"), "{}", err.message);
    match err.locator.as_deref() {
        Some(gleaner_framework::Locator::JsonPath { path, url }) => {
            assert!(path.starts_with("transactions.booked[0]"), "{path}");
            assert!(url.ends_with("/transactions"), "{url}");
        }
        other => panic!("no JSON path: {other:?}"),
    }
    bank.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_psu_id_the_bank_does_not_know_is_login_failed() {
    let bank = Bank::start_with(Scenario::Normal, &[("psu_id", "someone.else")]).await;
    let err = bank.attended().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{err}");
    assert!(
        err.message.contains("PSU_CREDENTIALS_INVALID"),
        "{}",
        err.message
    );
    bank.assert_nothing_stored().await;
}

#[tokio::test]
async fn an_account_without_the_banks_endpoint_says_so() {
    let h = Harness::new().await.unwrap();
    let account = h.account("nextgenpsd2", &[], &[], None).await.unwrap();
    let err = h
        .run(&NextGenPsd2::new().unwrap(), &account)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UserActionNeeded, "{err}");
    assert!(err.message.contains("endpoint"), "{}", err.message);
}

#[tokio::test]
async fn a_client_certificate_is_read_from_pem_files_and_checked() {
    let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/tls");
    let cert = format!("{tls}/self-signed.crt");
    let key = std::fs::read_to_string(format!("{tls}/self-signed.key")).unwrap();

    // Both given (the certificate as a file, the key as PEM text): the run
    // goes through a client that presents them (over plain HTTP here, so
    // the sandbox never asks).
    let bank = Bank::start(Scenario::Normal).await;
    let account = bank
        .h
        .account(
            "nextgenpsd2",
            &[
                ("bank_name", "B"),
                ("psu_id", PSU_ID),
                ("client_certificate", &cert),
            ],
            &[("client_key", &key)],
            Some(&bank.sandbox.base_url()),
        )
        .await
        .unwrap();
    let options = RunOptions {
        two_factor: Arc::clone(&bank.person) as Arc<dyn TwoFactorChannel>,
        ..bank.h.run_options()
    };
    bank.h
        .run_with(&NextGenPsd2::new().unwrap(), &account, options.clone())
        .await
        .unwrap();
    assert!(!bank.h.logs().contains("PRIVATE KEY"));

    // Half given, or not a certificate: LOGIN_FAILED before any call.
    for (fields, secrets) in [
        (
            vec![("bank_name", "B"), ("client_certificate", cert.as_str())],
            vec![],
        ),
        (
            vec![
                ("bank_name", "B"),
                ("client_certificate", "/nowhere/cert.pem"),
            ],
            vec![("client_key", key.as_str())],
        ),
        (
            vec![("bank_name", "B"), ("client_certificate", key.as_str())],
            vec![("client_key", key.as_str())],
        ),
    ] {
        let requests = bank.sandbox.requests();
        let account = bank
            .h
            .account(
                "nextgenpsd2",
                &fields,
                &secrets,
                Some(&bank.sandbox.base_url()),
            )
            .await
            .unwrap();
        let err = bank
            .h
            .run_with(&NextGenPsd2::new().unwrap(), &account, options.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::LoginFailed, "{err}");
        assert!(!err.message.contains("PRIVATE KEY"), "{}", err.message);
        assert_eq!(bank.sandbox.requests(), requests);
    }
}

#[tokio::test]
async fn the_demo_sandbox_reaches_the_free_mobile_debits() {
    // As `gleaner demo` and the conformance suite start it: through the
    // registry, its demo fields, the system clock, the kit's channel.
    let registry = gleaner_konnectors::Registry::builtin().unwrap();
    let def = registry.get("nextgenpsd2").unwrap().sandbox.unwrap();
    assert_eq!(def.scenarios[0].name, "normal");
    let running = def.launch(Default::default()).await.unwrap();
    let h = Harness::new().await.unwrap();
    let account = h
        .account_owned(
            "nextgenpsd2",
            running.fields.clone(),
            running.secrets.clone(),
            Some(&running.base_url),
        )
        .await
        .unwrap();
    h.run(&NextGenPsd2::new().unwrap(), &account).await.unwrap();
    let invoices: Value =
        serde_json::from_str(include_str!("../../fixtures/free-mobile/invoices.json")).unwrap();
    let lines: Vec<&Value> = invoices["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "pdf")
        .collect();
    let ops = h.docs(OPERATIONS).await.unwrap();
    let debits: Vec<&Value> = ops
        .iter()
        .map(|d| &d.data)
        .filter(|o| {
            o["label"]
                .as_str()
                .is_some_and(|l| l.starts_with("PRLV SEPA FREE MOBILE"))
        })
        .collect();
    assert_eq!(debits.len(), lines.len());
    for invoice in lines {
        let billed =
            NaiveDate::parse_from_str(invoice["date_param"].as_str().unwrap(), "%Y%m%d").unwrap();
        let amount = format!("-{}", invoice["amount"].as_str().unwrap());
        assert!(
            debits.iter().any(|d| {
                let day: NaiveDate = d["date"].as_str().unwrap()[..10].parse().unwrap();
                let days = (day - billed).num_days();
                let got = d["amount"].to_string();
                got == amount && (1..=3).contains(&days)
            }),
            "no debit for the invoice of {billed} ({amount})"
        );
    }
}
