//! Free Mobile's new-device verification (a code sent by email) through
//! the runner, against the sandbox's 2FA account (`LOGIN_2FA`).
//!
//! The person is played by [`Person`], a `TwoFactorChannel` that reads the
//! code from the sandbox's outbox (or gives a wrong one, or takes too long),
//! as someone reading their mailbox would. Failures must leave the store and
//! the files tree exactly as they were.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use gleaner_framework::context::{ContextParts, RunAccount};
use gleaner_framework::http::{HttpClient, HttpConfig};
use gleaner_framework::store::Account;
use gleaner_framework::twofa::Unattended;
use gleaner_framework::{
    ErrorCode, Konnector, KonnectorError, RunContext, RunEnv, RunOptions, RunReport, Secret,
    TwoFactorChannel, TwoFactorKind, TwoFactorRequest, async_trait,
};
use gleaner_konnectors::telco::free_mobile::FreeMobile;
use gleaner_konnectors::telco::free_mobile::sandbox::{
    CODE_VALIDITY, EMAIL_HINT, LOGIN, LOGIN_2FA, PASSWORD, Sandbox, Scenario,
};
use gleaner_testing::TestAccount;
use url::Url;

const BILLS: &str = "io.cozy.bills";
const ACCOUNT_ID: &str = "acc-free-mobile-2fa";

/// What the person does when asked.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Reads the code from the mailbox and types it.
    FromOutbox,
    /// Types a code that is not the one sent.
    Wrong,
    /// Reads the code, but only after it expired.
    TooLate,
}

/// A person answering second-factor questions from the sandbox's outbox.
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

    fn asked(&self) -> Vec<TwoFactorRequest> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl TwoFactorChannel for Person {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        self.asked.lock().unwrap().push(request.clone());
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("asked more often than the test planned");
        let code = self
            .sandbox
            .last_email_code()
            .expect("asked for a code but none was emailed");
        Ok(Secret::new(match answer {
            Answer::FromOutbox => code,
            Answer::Wrong => wrong(&code),
            Answer::TooLate => {
                self.sandbox
                    .advance_clock(CODE_VALIDITY + Duration::from_secs(1));
                code
            }
        }))
    }
}

/// A 6-digit code that is not `code`.
fn wrong(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_owned()
}

struct Harness {
    kit: gleaner_testing::Harness,
    sandbox: Arc<Sandbox>,
    env: RunEnv,
    account: Account,
}

impl Harness {
    async fn start(login: &str) -> Self {
        let kit = gleaner_testing::Harness::builder()
            .sessions(false)
            .build()
            .await
            .unwrap();
        let sandbox = Arc::new(Sandbox::start(Scenario::Normal).await.unwrap());
        let env = kit.env().clone();
        let account = Account {
            id: ACCOUNT_ID.into(),
            konnector: "free-mobile".into(),
            label: login.into(),
            fields: BTreeMap::from([("login".to_owned(), login.to_owned())]),
            sealed_secrets: Vec::new(),
            endpoint: Some(sandbox.base_url()),
            created_at: Utc::now(),
            folder: Account::default_folder("Free Mobile", ACCOUNT_ID),
        };
        Self {
            kit,
            sandbox,
            env,
            account,
        }
    }

    async fn run(&self, channel: Arc<dyn TwoFactorChannel>) -> Result<RunReport, KonnectorError> {
        let konnector = FreeMobile::new().unwrap();
        let account = TestAccount {
            account: self.account.clone(),
            secrets: secrets(),
        };
        self.kit
            .run_with(
                &konnector,
                &account,
                RunOptions {
                    two_factor: channel,
                    ..RunOptions::default()
                },
            )
            .await
    }

    async fn bills(&self) -> usize {
        self.env
            .store
            .list(BILLS, Some(ACCOUNT_ID), None, 1000)
            .await
            .unwrap()
            .len()
    }

    async fn assert_nothing_saved(&self) {
        let counts = self.kit.counts().await.unwrap();
        assert!(counts.is_empty(), "documents were saved: {counts:?}");
        assert!(self.env.store.state(ACCOUNT_ID).await.unwrap().is_none());
        let files = self.kit.file_paths().unwrap();
        assert!(files.is_empty(), "files were left behind: {files:?}");
    }
}

fn secrets() -> BTreeMap<String, Secret> {
    BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))])
}

#[tokio::test]
async fn the_emailed_code_logs_in_and_the_run_imports_everything() {
    let h = Harness::start(LOGIN_2FA).await;
    let person = Person::new(&h.sandbox, &[Answer::FromOutbox]);
    let report = h.run(person.clone()).await.unwrap();
    assert_eq!(report.counts[BILLS].created, 20, "{:?}", report.counts);
    assert_eq!(h.bills().await, 20);

    let asked = person.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].kind, TwoFactorKind::Email);
    assert_eq!(asked[0].hint.as_deref(), Some(EMAIL_HINT));
    assert_eq!(asked[0].attempt, 1);
    assert_eq!(asked[0].account_id, ACCOUNT_ID);
    assert_eq!(asked[0].account_label, LOGIN_2FA);
    assert_eq!(asked[0].konnector, "free-mobile");
    assert_eq!(h.sandbox.outbox().len(), 1);
    assert_eq!(h.sandbox.verification_posts(), 1);
}

#[tokio::test]
async fn an_account_without_verification_never_asks() {
    let h = Harness::start(LOGIN).await;
    let person = Person::new(&h.sandbox, &[]);
    let report = h.run(person.clone()).await.unwrap();
    assert_eq!(report.counts[BILLS].created, 20);
    assert!(person.asked().is_empty());
    assert!(h.sandbox.outbox().is_empty());
}

#[tokio::test]
async fn a_wrong_code_then_the_right_one_succeeds_on_attempt_two() {
    let h = Harness::start(LOGIN_2FA).await;
    let person = Person::new(&h.sandbox, &[Answer::Wrong, Answer::FromOutbox]);
    let report = h.run(person.clone()).await.unwrap();
    assert_eq!(report.counts[BILLS].created, 20);
    let attempts: Vec<u32> = person.asked().iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [1, 2]);
    assert_eq!(h.sandbox.verification_posts(), 2);
    // The site kept the same code for the second try: one email.
    assert_eq!(h.sandbox.outbox().len(), 1);
}

#[tokio::test]
async fn three_wrong_codes_give_wrong_twofa_code_and_save_nothing() {
    let h = Harness::start(LOGIN_2FA).await;
    let person = Person::new(
        &h.sandbox,
        &[
            Answer::Wrong,
            Answer::Wrong,
            Answer::Wrong,
            Answer::FromOutbox,
        ],
    );
    let err = h.run(person.clone()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UserActionNeededWrongTwofaCode, "{err}");
    assert!(err.message.contains(LOGIN_2FA), "{}", err.message);
    assert_eq!(person.asked().len(), 3, "a 4th code was asked for");
    assert_eq!(h.sandbox.verification_posts(), 3);
    h.assert_nothing_saved().await;
}

#[tokio::test]
async fn unattended_gives_twofa_expired_and_saves_nothing() {
    let h = Harness::start(LOGIN_2FA).await;
    let err = h.run(Arc::new(Unattended)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UserActionNeededTwofaExpired, "{err}");
    assert!(err.message.contains("unattended"), "{}", err.message);
    assert_eq!(h.sandbox.verification_posts(), 0);
    h.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_code_given_after_it_expired_gives_twofa_expired() {
    let h = Harness::start(LOGIN_2FA).await;
    let person = Person::new(&h.sandbox, &[Answer::TooLate]);
    let err = h.run(person.clone()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UserActionNeededTwofaExpired, "{err}");
    assert!(err.message.contains("expir"), "{}", err.message);
    assert_eq!(person.asked().len(), 1);
    h.assert_nothing_saved().await;
}

/// The trusted-device cookie lives in the HTTP client's cookie jar: two
/// runs sharing one jar are asked once. (`run_konnector` builds a fresh
/// client, and so a fresh jar, for every run: until jars are persisted
/// between runs, each run from a new jar is asked again, as the last part
/// shows.)
#[tokio::test]
async fn a_trusted_device_is_not_asked_again_with_the_same_cookie_jar() {
    let h = Harness::start(LOGIN_2FA).await;
    let konnector = FreeMobile::new().unwrap();
    let base_url = Url::parse(&h.sandbox.base_url()).unwrap();
    let client = || {
        HttpClient::new(HttpConfig {
            allowed_hosts: vec![format!(
                "{}:{}",
                base_url.host_str().unwrap(),
                base_url.port().unwrap()
            )],
            retry: gleaner_testing::fast_retry(),
            ..HttpConfig::default()
        })
        .unwrap()
    };
    let context = |http: HttpClient, channel: Arc<dyn TwoFactorChannel>| {
        RunContext::new(ContextParts {
            run_id: gleaner_framework::ids::new_id(),
            account: RunAccount {
                id: ACCOUNT_ID.into(),
                label: LOGIN_2FA.into(),
                fields: h.account.fields.clone(),
                secrets: secrets(),
                folder: h.account.folder.clone(),
            },
            manifest: Arc::new(konnector.manifest().clone()),
            base_url: base_url.clone(),
            http,
            store: Arc::clone(&h.env.store),
            files: h.env.files.clone(),
            state: serde_json::Value::Null,
            progress: None,
            two_factor: channel,
        })
    };
    let shared_jar = client();
    let person = Person::new(&h.sandbox, &[Answer::FromOutbox]);
    let mut first = context(shared_jar.clone(), person.clone());
    konnector.run(&mut first).await.unwrap();
    assert_eq!(person.asked().len(), 1);

    // Same jar, once the site dropped the login session (idle too long):
    // a new login, not asked thanks to the trusted-device cookie.
    h.sandbox
        .advance_clock(std::time::Duration::from_secs(31 * 60));
    let mut second = context(shared_jar.clone(), Arc::new(Unattended));
    konnector.run(&mut second).await.unwrap();
    assert_eq!(h.sandbox.outbox().len(), 1);
    assert_eq!(h.sandbox.login_posts(), 2);

    // A new jar is a new device: asked again.
    let mut third = context(client(), Arc::new(Unattended));
    let err = konnector.run(&mut third).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UserActionNeededTwofaExpired);
    assert_eq!(h.sandbox.outbox().len(), 2);
}
