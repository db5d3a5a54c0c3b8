//! Login sessions kept between runs, against the Free Mobile sandbox.
//!
//! The sandbox counts login POSTs and expires idle sessions server-side
//! after a TTL on its own clock, which the tests move forward instead of
//! sleeping. Sessions are sealed by a real vault in a real SQLite store.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use gleaner_framework::session::Sessions;
use gleaner_framework::store::{Account, SealedSession, SessionStore, SqliteStore};
use gleaner_framework::{RunReport, Secret};
use gleaner_konnectors::telco::free_mobile::FreeMobile;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use gleaner_testing::TestAccount;

const ACCOUNT_ID: &str = "acc-sessions";

/// The Free Mobile sandbox, a fresh installation from the test kit
/// (sessions on, sealed by its vault in its store), and an account pointing
/// at the sandbox.
struct Harness {
    kit: gleaner_testing::Harness,
    sandbox: Sandbox,
    store: SqliteStore,
    sessions: Sessions,
    account: Account,
}

impl Harness {
    async fn start() -> Self {
        let kit = gleaner_testing::Harness::new().await.unwrap();
        let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
        let store = kit.store().clone();
        let sessions = kit.sessions();
        let account = Account {
            id: ACCOUNT_ID.into(),
            konnector: "free-mobile".into(),
            label: LOGIN.into(),
            fields: BTreeMap::from([("login".to_owned(), LOGIN.to_owned())]),
            sealed_secrets: Vec::new(),
            endpoint: Some(sandbox.base_url()),
            created_at: Utc::now(),
            folder: Account::default_folder("Free Mobile", ACCOUNT_ID),
        };
        Self {
            kit,
            sandbox,
            store,
            sessions,
            account,
        }
    }

    async fn run(&self, password: &str) -> Result<RunReport, gleaner_framework::KonnectorError> {
        let konnector = FreeMobile::new().unwrap();
        let account = TestAccount {
            account: self.account.clone(),
            secrets: BTreeMap::from([("password".to_owned(), Secret::new(password))]),
        };
        self.kit.run(&konnector, &account).await
    }

    async fn saved(&self) -> Option<SealedSession> {
        self.store.load_session(ACCOUNT_ID).await.unwrap()
    }
}

#[tokio::test]
async fn a_second_run_within_the_session_life_sends_no_login() {
    let h = Harness::start().await;
    let first = h.run(PASSWORD).await.unwrap();
    assert_eq!(h.sandbox.login_posts(), 1);
    assert_eq!(first.files_downloaded, 20);
    let saved = h.saved().await.expect("the session was saved");
    // Sealed: the session id the sandbox set is not in the blob.
    assert!(!saved.sealed.windows(9).any(|w| w == b"PHPSESSID"));
    let ttl = saved.expires_at - Utc::now();
    assert!(ttl > chrono::Duration::minutes(29) && ttl <= chrono::Duration::minutes(30));

    let second = h.run(PASSWORD).await.unwrap();
    assert_eq!(h.sandbox.login_posts(), 1, "the second run logged in again");
    assert_eq!(second.created(), 0);
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    // The same server-side session served both runs.
    assert_eq!(h.sandbox.live_sessions(), 1);
}

#[tokio::test]
async fn a_session_the_provider_expired_leads_to_a_fresh_login() {
    let h = Harness::start().await;
    h.run(PASSWORD).await.unwrap();
    assert_eq!(h.sandbox.login_posts(), 1);

    // 31 idle minutes on the sandbox clock: the server dropped the session,
    // while the client still holds it as live (client TTL is also 30 min,
    // but the client clock did not move).
    h.sandbox.advance_clock(Duration::from_secs(31 * 60));
    let report = h.run(PASSWORD).await.unwrap();
    assert_eq!(
        h.sandbox.login_posts(),
        2,
        "a dead session must lead to a login"
    );
    assert_eq!(report.created(), 0);
    // The new session is saved and reused by the next run.
    h.run(PASSWORD).await.unwrap();
    assert_eq!(h.sandbox.login_posts(), 2);
}

#[tokio::test]
async fn a_session_expired_on_the_client_side_is_not_restored() {
    let h = Harness::start().await;
    h.run(PASSWORD).await.unwrap();
    let mut saved = h.saved().await.unwrap();
    saved.expires_at = Utc::now() - chrono::Duration::seconds(1);
    h.store.save_session(ACCOUNT_ID, &saved).await.unwrap();
    h.run(PASSWORD).await.unwrap();
    assert_eq!(h.sandbox.login_posts(), 2);
    // A new, live session replaced it.
    assert!(h.saved().await.unwrap().expires_at > Utc::now());
}

#[tokio::test]
async fn a_tampered_session_is_discarded_with_a_warning_and_the_run_logs_in() {
    let h = Harness::start().await;
    h.run(PASSWORD).await.unwrap();
    let mut saved = h.saved().await.unwrap();
    let last = saved.sealed.len() - 1;
    saved.sealed[last] ^= 0x01;
    h.store.save_session(ACCOUNT_ID, &saved).await.unwrap();

    let report = h.run(PASSWORD).await.unwrap();
    assert_eq!(h.sandbox.login_posts(), 2);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let w = &report.warnings[0];
    assert!(w.contains("discarded") && w.contains("tampered"), "{w}");
    // The fresh session replaced the bad one and opens again.
    h.run(PASSWORD).await.unwrap();
    assert_eq!(h.sandbox.login_posts(), 2);
}

#[tokio::test]
async fn a_session_of_another_account_does_not_open() {
    let h = Harness::start().await;
    h.run(PASSWORD).await.unwrap();
    let saved = h.saved().await.unwrap();
    // Copy the sealed session onto another account: the AAD differs.
    h.store.save_session("other", &saved).await.unwrap();
    match h.sessions.restore("other").await.unwrap() {
        gleaner_framework::session::Restore::Discarded(why) => {
            assert!(why.contains("tampered"), "{why}")
        }
        _ => panic!("a session moved to another account opened"),
    }
    assert!(h.store.load_session("other").await.unwrap().is_none());
}

#[tokio::test]
async fn a_failed_run_after_a_login_keeps_the_session() {
    let h = Harness::start().await;
    // Login works, the pages changed: the run fails after logging in.
    h.sandbox.set_scenario(Scenario::ChangedMarkup);
    let err = h.run(PASSWORD).await.err().unwrap();
    assert_eq!(err.code, gleaner_framework::ErrorCode::PageChanged);
    assert_eq!(h.sandbox.login_posts(), 1);
    // The login is worth keeping: the next run reuses it.
    h.sandbox.set_scenario(Scenario::Normal);
    let report = h.run(PASSWORD).await.unwrap();
    assert_eq!(h.sandbox.login_posts(), 1);
    assert_eq!(report.files_downloaded, 20);
}

#[tokio::test]
async fn a_wrong_password_saves_no_session() {
    let h = Harness::start().await;
    let err = h.run("wrong-password-1").await.err().unwrap();
    assert_eq!(err.code, gleaner_framework::ErrorCode::LoginFailed);
    assert!(h.saved().await.is_none());
}
