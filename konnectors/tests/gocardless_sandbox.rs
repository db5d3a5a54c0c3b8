//! The GoCardless konnector against its sandbox: the bank link, the
//! import, pending operations that book, every scenario's exact error code
//! with nothing partial stored, the bank's daily limit, tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use gleaner_framework::clock::ManualClock;
use gleaner_framework::store::DocStore;
use gleaner_framework::twofa::{LoopbackLinks, Unattended};
use gleaner_framework::{ErrorCode, KonnectorError, RunReport};
use gleaner_konnectors::bank::gocardless::GoCardless;
use gleaner_konnectors::bank::gocardless::sandbox::{
    INSTITUTION_ID, SECRET_ID, SECRET_KEY, Sandbox,
};
use gleaner_testing::{Harness, TestAccount};
use serde_json::Value;

const ACCOUNTS: &str = "io.cozy.bank.accounts";
const OPERATIONS: &str = "io.cozy.bank.operations";
const BALANCES: &str = "io.cozy.bank.balancehistories";
const IBAN: &str = "FR7630006000011234567890189";

struct Bank {
    h: Harness,
    clock: ManualClock,
    sandbox: Sandbox,
    account: TestAccount,
}

impl Bank {
    async fn start(scenario: &str) -> Self {
        Self::start_with(scenario, true).await
    }

    async fn start_with(scenario: &str, sessions: bool) -> Self {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 30, 9, 30, 0).unwrap());
        let h = Harness::builder()
            .clock(clock.clone())
            .sessions(sessions)
            .build()
            .await
            .unwrap();
        let sandbox = Sandbox::start_with_clock(Arc::new(clock.clone()))
            .await
            .unwrap();
        assert!(sandbox.set_scenario(scenario), "{scenario}");
        let account = h
            .account(
                "gocardless",
                &[("institution_id", INSTITUTION_ID)],
                &[("secret_id", SECRET_ID), ("secret_key", SECRET_KEY)],
                Some(&sandbox.base_url()),
            )
            .await
            .unwrap();
        Self {
            h,
            clock,
            sandbox,
            account,
        }
    }

    async fn run(&self) -> Result<RunReport, KonnectorError> {
        self.h.run(&GoCardless::new().unwrap(), &self.account).await
    }

    async fn counts(&self) -> BTreeMap<String, u64> {
        self.h.counts().await.unwrap()
    }

    async fn ops(&self) -> Vec<(String, Value)> {
        self.h
            .docs(OPERATIONS)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.id, d.data))
            .collect()
    }

    /// Nothing reached the store: no document, no state.
    async fn assert_nothing_stored(&self) {
        assert!(self.counts().await.is_empty(), "{:?}", self.counts().await);
        assert!(
            self.h
                .store()
                .state(self.account.id())
                .await
                .unwrap()
                .is_none()
        );
    }
}

fn label(op: &Value) -> &str {
    op["label"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_first_run_links_the_bank_and_imports_accounts_balances_and_operations() {
    let b = Bank::start("normal").await;
    let report = b.run().await.unwrap();
    assert_eq!(b.sandbox.links_made(), 1);
    assert_eq!(b.sandbox.token_calls(), (1, 0));
    let counts = b.counts().await;
    assert_eq!(counts[ACCOUNTS], 2, "{counts:?}");
    assert!(counts[OPERATIONS] > 100, "{counts:?}");
    assert!(counts[BALANCES] >= 2, "{counts:?}");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let accounts = b.h.docs(ACCOUNTS).await.unwrap();
    let current = accounts
        .iter()
        .find(|a| a.data["vendorId"] == IBAN)
        .expect("keyed on the IBAN");
    assert_eq!(current.data["type"], "checkings");
    assert_eq!(current.data["institutionLabel"], "Sandbox Finance");
    assert_eq!(current.data["label"], "Compte courant");
    assert!(current.data["balance"].is_number());
    assert!(
        accounts
            .iter()
            .any(|a| a.data["type"] == "savings" && a.data["label"] == "Livret A")
    );

    let ops = b.ops().await;
    let pending: Vec<&Value> = ops
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["isComing"] == true)
        .collect();
    assert_eq!(pending.len(), 4, "{pending:#?}");
    assert!(
        pending
            .iter()
            .any(|d| label(d) == "CARTE X1234 CARREFOUR CITY")
    );
    for (_, op) in &ops {
        assert!(op["account"].is_string(), "{op}");
        assert!(op["vendorAccountId"].is_string());
    }
    // First run: a year of history (the account's default), not the bank's two.
    let oldest = ops
        .iter()
        .filter_map(|(_, d)| d["date"].as_str())
        .min()
        .unwrap()
        .to_owned();
    assert!(oldest.as_str() >= "2025-11-30", "{oldest}");

    // A second run creates nothing, reuses the tokens and the link.
    let again = b.run().await.unwrap();
    assert_eq!(again.created(), 0, "{:?}", again.counts);
    assert_eq!(b.sandbox.links_made(), 1);
    assert_eq!(b.sandbox.requisitions_created(), 1);
    assert_eq!(b.sandbox.token_calls(), (1, 0));
    assert_eq!(b.counts().await, counts);

    // No token, secret or IBAN in the logs.
    let logs = b.h.logs().text();
    for t in b.sandbox.issued_tokens() {
        assert!(!logs.contains(&t), "a token reached the logs");
    }
    assert!(!logs.contains(SECRET_KEY) && !logs.contains(SECRET_ID));
    assert!(!logs.contains(IBAN), "an IBAN reached the logs");
    // Nor a token in clear in any file (store, WAL, vault, sessions).
    let tokens = b.sandbox.issued_tokens();
    assert!(tokens.len() >= 2);
    for path in gleaner_testing::files_under(b.h.dir()).unwrap() {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for t in &tokens {
            assert!(
                !text.contains(t.as_str()),
                "a token in clear in {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn a_pending_payment_books_two_days_later_in_the_same_document() {
    let b = Bank::start("normal").await;
    b.run().await.unwrap();
    let before = b.ops().await;
    let (card_id, _) = before
        .iter()
        .find(|(_, d)| label(d) == "CARTE X1234 CARREFOUR CITY")
        .unwrap()
        .clone();
    let twins_before = before
        .iter()
        .filter(|(_, d)| label(d).contains("PAUL GARE DE LYON"))
        .count();
    assert_eq!(twins_before, 2);
    assert!(
        before
            .iter()
            .any(|(_, d)| label(d).contains("HOTEL DU PORT"))
    );

    b.clock.advance(Duration::days(2));
    b.run().await.unwrap();
    let after = b.ops().await;
    let (_, card) = after.iter().find(|(id, _)| *id == card_id).unwrap();
    assert_eq!(card["isComing"], false, "{card}");
    assert_eq!(label(card), "CB CARREFOUR CITY PARIS 15 FACT 281125");
    assert_eq!(card["amount"].to_string(), "-43.10");
    assert_eq!(card["date"], "2026-12-02T00:00:00Z");
    // Never two documents for one payment.
    assert_eq!(
        after
            .iter()
            .filter(|(_, d)| label(d).contains("CARREFOUR CITY"))
            .count(),
        1
    );
    // The twins booked one for one; the pre-authorisation is gone.
    let twins: Vec<&Value> = after
        .iter()
        .map(|(_, d)| d)
        .filter(|d| label(d).contains("PAUL GARE DE LYON"))
        .collect();
    assert_eq!(twins.len(), 2, "{twins:#?}");
    assert!(twins.iter().all(|d| d["isComing"] == false));
    assert!(
        !after
            .iter()
            .any(|(_, d)| label(d).contains("HOTEL DU PORT"))
    );
    assert!(after.iter().all(|(_, d)| d["isComing"] == false));
    // A transfer that was never pending is simply there.
    assert!(
        after
            .iter()
            .any(|(_, d)| label(d) == "VIR SEPA REMBOURSEMENT DINER ALEX")
    );
    // The access token (a day) was refreshed, not bought again.
    assert_eq!(b.sandbox.token_calls(), (1, 1));
}

#[tokio::test]
async fn wrong_secrets_are_login_failed_and_nothing_is_stored() {
    let b = Bank::start("normal").await;
    let bad = b.account.with_secret("secret_key", "not-the-key-0000");
    let err =
        b.h.run(&GoCardless::new().unwrap(), &bad)
            .await
            .unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
    assert!(
        err.message.contains("No active account found"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("not-the-key-0000"));
    b.assert_nothing_stored().await;
    assert_eq!(b.sandbox.requisitions_created(), 0);
}

#[tokio::test]
async fn gocardless_rate_limit_is_vendor_down_with_its_retry_after_and_nothing_stored() {
    let b = Bank::start("rate-limited").await;
    let err = b.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{}", err.message);
    assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(90)));
    assert!(err.message.contains("429"), "{}", err.message);
    b.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_short_429_is_retried_and_the_run_succeeds() {
    let b = Bank::start("normal").await;
    b.sandbox.set_rate_limited(1);
    let report = b.run().await.unwrap();
    assert!(report.retries >= 1);
    assert_eq!(b.counts().await[ACCOUNTS], 2);
}

#[tokio::test]
async fn unavailable_is_vendor_down_and_nothing_stored() {
    let b = Bank::start("unavailable").await;
    let err = b.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{}", err.message);
    assert!(err.message.contains("503"), "{}", err.message);
    b.assert_nothing_stored().await;
}

#[tokio::test]
async fn an_expired_requisition_is_sca_required_then_a_new_link_restores_access() {
    let b = Bank::start("normal").await;
    b.run().await.unwrap();
    let counts = b.counts().await;
    let ops_before = b.ops().await;

    b.sandbox.expire_links();
    b.clock.advance(Duration::hours(1));
    let err = b.run().await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::UserActionNeededScaRequired,
        "{}",
        err.message
    );
    assert!(err.message.contains("expired"), "{}", err.message);
    assert!(
        err.message.contains("Reconnect the bank"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("gleaner "), "{}", err.message);
    assert_eq!(b.counts().await, counts, "nothing partial");

    // The next run makes a new link: new GoCardless account ids, the same
    // documents (keyed on the IBAN), nothing duplicated.
    let report = b.run().await.unwrap();
    assert_eq!(b.sandbox.links_made(), 2);
    assert_eq!(report.created(), 0, "{:?}", report.counts);
    assert_eq!(b.counts().await, counts);
    let ids_before: Vec<&String> = ops_before.iter().map(|(id, _)| id).collect();
    let ids_after: Vec<String> = b.ops().await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids_before.len(), ids_after.len());
}

#[tokio::test]
async fn a_link_that_expires_at_once_is_sca_required_and_stores_nothing() {
    let b = Bank::start("expired-requisition").await;
    let err = b.run().await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::UserActionNeededScaRequired,
        "{}",
        err.message
    );
    assert!(err.message.contains("EX"), "{}", err.message);
    b.assert_nothing_stored().await;
}

#[tokio::test]
async fn access_revoked_at_the_bank_is_sca_required_and_nothing_partial() {
    let b = Bank::start("normal").await;
    b.run().await.unwrap();
    let counts = b.counts().await;
    b.sandbox.revoke_access();
    let err = b.run().await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::UserActionNeededScaRequired,
        "{}",
        err.message
    );
    assert!(err.message.contains("revoked"), "{}", err.message);
    assert_eq!(b.counts().await, counts);
    // Reconnecting works.
    b.run().await.unwrap();
    assert_eq!(b.sandbox.links_made(), 2);
}

#[tokio::test]
async fn a_refused_link_is_login_failed_and_stores_nothing() {
    let b = Bank::start("refused-link").await;
    let err = b.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
    assert!(err.message.contains("RJ"), "{}", err.message);
    b.assert_nothing_stored().await;
}

#[tokio::test]
async fn an_unattended_run_keeps_its_link_for_the_next_run_with_a_person() {
    let b = Bank::start("normal").await;
    let k = GoCardless::new().unwrap();
    let mut unattended = b.h.run_options();
    unattended.two_factor = Arc::new(Unattended);
    let err = b.h.run_with(&k, &b.account, unattended).await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::UserActionNeededTwofaExpired,
        "{}",
        err.message
    );
    b.assert_nothing_stored().await;
    assert_eq!(b.sandbox.requisitions_created(), 1);

    let mut attended = b.h.run_options();
    attended.two_factor = Arc::new(LoopbackLinks::new(Arc::new(Unattended)));
    b.h.run_with(&k, &b.account, attended).await.unwrap();
    assert_eq!(
        b.sandbox.requisitions_created(),
        1,
        "the saved link was reused"
    );
    assert_eq!(b.sandbox.links_made(), 1);
    assert_eq!(b.counts().await[ACCOUNTS], 2);
}

#[tokio::test]
async fn the_daily_limit_is_not_crossed_and_the_run_says_when_to_come_back() {
    let b = Bank::start("daily-limit").await;
    b.run().await.unwrap();
    let counts = b.counts().await;
    let calls = b.sandbox.account_calls();
    assert_eq!(calls, 6, "details, balances, transactions of two accounts");

    b.clock.advance(Duration::hours(2));
    let err = b.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{}", err.message);
    assert_eq!(
        b.sandbox.account_calls(),
        calls,
        "no call made past the limit"
    );
    // The window resets at midnight UTC: 12 h 30 from 11:30.
    let wait = err.retry_after.unwrap().as_secs();
    assert!((12 * 3600..=12 * 3600 + 1800).contains(&wait), "{wait}");
    assert!(
        err.message.contains("2026-12-01 00:00 UTC"),
        "{}",
        err.message
    );
    assert_eq!(b.counts().await, counts);

    // The next day the run fetches again (details are cached for a week).
    b.clock.advance(Duration::hours(13));
    let report = b.run().await.unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(b.sandbox.account_calls(), calls + 4);
}

#[tokio::test]
async fn the_banks_429_without_saved_counts_is_vendor_down_and_nothing_partial() {
    let b = Bank::start("normal").await;
    b.run().await.unwrap();
    let counts = b.counts().await;
    b.clock.advance(Duration::days(8));
    b.sandbox.set_daily_limit(0);
    let err = b.run().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{}", err.message);
    assert!(err.message.contains("429"), "{}", err.message);
    assert_eq!(b.counts().await, counts);
}

#[tokio::test]
async fn a_revoked_access_token_is_renewed_once() {
    let b = Bank::start("normal").await;
    b.run().await.unwrap();
    b.sandbox.revoke_access_tokens();
    b.run().await.unwrap();
    assert_eq!(b.sandbox.token_calls(), (1, 1));
}

#[tokio::test]
async fn without_sessions_each_run_needs_the_person_again() {
    let b = Bank::start_with("normal", false).await;
    b.run().await.unwrap();
    b.run().await.unwrap();
    assert_eq!(b.sandbox.links_made(), 2);
    assert_eq!(b.sandbox.token_calls(), (2, 0));
    assert_eq!(b.counts().await[ACCOUNTS], 2);
}

#[tokio::test]
async fn a_recorded_run_keeps_no_token_secret_or_iban() {
    let b = Bank::start("normal").await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = b.h.run_options();
    options.cassette = Some(gleaner_framework::CassetteMode::Record(
        dir.path().to_path_buf(),
    ));
    b.h.run_with(&GoCardless::new().unwrap(), &b.account, options)
        .await
        .unwrap();
    let path = gleaner_framework::cassette::Cassette::find(dir.path(), "gocardless").unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    for t in b.sandbox.issued_tokens() {
        assert!(!text.contains(&t), "a token is in the cassette");
    }
    assert!(!text.contains(SECRET_KEY) && !text.contains(SECRET_ID));
    assert!(!text.contains(IBAN), "an IBAN is in the cassette");
    assert!(text.contains("__TOKEN_"), "placeholders expected");
}

#[tokio::test]
async fn a_link_gocardless_no_longer_knows_is_made_again_without_duplicates() {
    let b = Bank::start("normal").await;
    b.run().await.unwrap();
    let counts = b.counts().await;
    // Another GoCardless (as after a demo restart): the saved tokens and
    // requisition are unknown there.
    let other = Sandbox::start_with_clock(Arc::new(b.clock.clone()))
        .await
        .unwrap();
    let mut moved = b.account.clone();
    moved.account.endpoint = Some(other.base_url());
    let report = b.h.run(&GoCardless::new().unwrap(), &moved).await.unwrap();
    assert_eq!(other.links_made(), 1);
    assert_eq!(
        other.token_calls(),
        (1, 1),
        "the refresh was refused, a new pair bought"
    );
    assert_eq!(report.created(), 0, "{:?}", report.counts);
    assert_eq!(b.counts().await, counts);
}
