//! The OAuth2 machinery end to end, with the Enedis konnector and its
//! sandbox: consent through the loopback redirect, state checks, refresh
//! before expiry, a rotated refresh token surviving a crash, one refresh for
//! concurrent jobs, a refused refresh.
//!
//! Time is a `ManualClock` shared by the token manager and the sandbox, so
//! tokens expire without sleeping.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::oauth::flow::{self, PendingAuthorization};
use gleaner_framework::oauth::{
    Clock, LoopbackRedirect, ManualClock, OAuthConfig, RefreshHook, RefreshStage, TokenManager,
};
use gleaner_framework::store::{Account, DocStore, SqliteStore};
use gleaner_framework::vault::Vault;
use gleaner_framework::{
    ErrorCode, Konnector, KonnectorError, RunEnv, RunOptions, RunReport, Secret, run_konnector,
};
use gleaner_konnectors::energy::enedis::Enedis;
use gleaner_konnectors::energy::enedis::sandbox::{
    ACCESS_TOKEN_LIFETIME, CLIENT_SECRET, Sandbox, USAGE_POINT_ID,
};

const ACCOUNT: &str = "acc-enedis";
const SERIES: &str = "io.cozy.timeseries.energy";

/// The sandbox and a fresh installation from the test kit, sharing one
/// `ManualClock` with the kit's token manager.
struct Harness {
    kit: gleaner_testing::Harness,
    clock: Arc<ManualClock>,
    sandbox: Sandbox,
    store: SqliteStore,
    vault: Arc<Vault>,
    manager: Arc<TokenManager>,
    config: OAuthConfig,
}

fn secrets() -> BTreeMap<String, Secret> {
    BTreeMap::from([("client_secret".to_owned(), Secret::new(CLIENT_SECRET))])
}

impl Harness {
    async fn start() -> Self {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let kit = gleaner_testing::Harness::builder()
            .clock(clock.as_ref().clone())
            .build()
            .await
            .unwrap();
        let sandbox = Sandbox::start_with_clock(clock.clone()).await.unwrap();
        let store = kit.store().clone();
        let vault = Arc::clone(kit.vault());
        let manager = Arc::clone(kit.oauth());
        let konnector = Enedis::new().unwrap();
        let spec = konnector.manifest().oauth.clone().unwrap();
        let config = OAuthConfig::resolve(&spec, Some(&sandbox.base_url()), &secrets()).unwrap();
        Self {
            kit,
            clock,
            sandbox,
            store,
            vault,
            manager,
            config,
        }
    }

    fn manager_on(
        store: &SqliteStore,
        vault: &Arc<Vault>,
        clock: &Arc<ManualClock>,
        hook: Option<RefreshHook>,
    ) -> TokenManager {
        let m = TokenManager::new(Arc::new(store.clone()), Arc::clone(vault))
            .unwrap()
            .with_clock(clock.clone() as Arc<dyn Clock>);
        match hook {
            Some(h) => m.with_refresh_hook(h),
            None => m,
        }
    }

    /// Another process: its own pool on the same file, its own manager.
    async fn other_process(&self, hook: Option<RefreshHook>) -> TokenManager {
        let store = SqliteStore::open(&self.kit.dir().join("gleaner.db"))
            .await
            .unwrap();
        Self::manager_on(&store, &self.vault, &self.clock, hook)
    }

    fn start_consent(&self, redirect_uri: &str) -> (url::Url, PendingAuthorization) {
        flow::start(
            &self.config,
            redirect_uri,
            self.clock.clone() as Arc<dyn Clock>,
        )
        .unwrap()
    }

    /// The whole consent: listener, "browser" following the consent URL,
    /// redirect check, code exchange, tokens stored. Returns the usage point.
    async fn consent(&self) -> String {
        let mut listener = LoopbackRedirect::bind(0).await.unwrap();
        let (url, pending) = self.start_consent(&listener.redirect_uri());
        let browser = tokio::spawn(async move { reqwest::get(url).await.unwrap() });
        let callback = listener.wait(&pending).await.unwrap();
        let page = browser.await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("consent"));
        let tokens = pending.exchange(&callback).await.unwrap();
        assert!(tokens.refresh_token.is_some());
        self.manager.save(ACCOUNT, &tokens).await.unwrap();
        callback.fields["usage_point_id"].clone()
    }

    async fn refresh_token(&self) -> String {
        let t = self.manager.load(ACCOUNT).await.unwrap().unwrap();
        t.refresh_token.unwrap().expose().to_owned()
    }

    async fn run(&self) -> Result<RunReport, KonnectorError> {
        self.run_with(None).await
    }

    async fn run_with(
        &self,
        cassette: Option<gleaner_framework::CassetteMode>,
    ) -> Result<RunReport, KonnectorError> {
        let account = Account {
            id: ACCOUNT.into(),
            konnector: "enedis".into(),
            label: "maison".into(),
            fields: BTreeMap::from([("usage_point_id".to_owned(), USAGE_POINT_ID.to_owned())]),
            sealed_secrets: Vec::new(),
            endpoint: Some(self.sandbox.base_url()),
            created_at: Utc::now(),
            folder: Account::default_folder("Enedis", ACCOUNT),
        };
        let env = RunEnv {
            retry: RetryPolicy::default(),
            ..self.kit.env().clone()
        };
        run_konnector(
            &Enedis::new().unwrap(),
            &account,
            secrets(),
            &env,
            RunOptions {
                oauth: Some(Arc::clone(&self.manager)),
                cassette,
                ..RunOptions::default()
            },
        )
        .await
    }

    /// Moves time to `left` seconds before the stored access token expires.
    async fn expire_in(&self, left: i64) {
        let t = self.manager.load(ACCOUNT).await.unwrap().unwrap();
        let at = t.expires_at.unwrap();
        assert_eq!(
            (at - self.clock.now()).num_seconds(),
            ACCESS_TOKEN_LIFETIME,
            "the sandbox's lifetime, as a string expires_in"
        );
        self.clock
            .advance(at - self.clock.now() - chrono::Duration::seconds(left));
    }
}

fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["gleaner.db", "gleaner.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            all.extend(b);
        }
    }
    all
}

#[tokio::test]
async fn consent_through_the_loopback_redirect_then_a_run_imports_months() {
    let h = Harness::start().await;
    let point = h.consent().await;
    assert_eq!(point, USAGE_POINT_ID);
    assert_eq!(h.sandbox.token_requests(), 1);
    // Tokens are sealed: none is in the database file in clear.
    let bytes = db_bytes(h.kit.dir());
    for token in h.sandbox.issued_tokens() {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token is in clear in the store"
        );
    }
    let report = h.run().await.unwrap();
    let created = report.counts[SERIES].created;
    assert!((12..=14).contains(&created), "{created} months");
    let docs = h.store.list(SERIES, None, None, 100).await.unwrap();
    let days: usize = docs
        .iter()
        .map(|d| d.data["series"].as_array().unwrap().len())
        .sum();
    assert!(days >= 365, "{days} days");
    assert_eq!(docs[0].data["meterId"], USAGE_POINT_ID);
    // No refresh was needed: one token request in all.
    assert_eq!(h.sandbox.token_requests(), 1);
    // A second run within the lookback creates nothing.
    let again = h.run().await.unwrap();
    assert_eq!(again.counts[SERIES].created, 0);
}

#[tokio::test]
async fn a_redirect_with_another_state_is_refused_and_nothing_is_exchanged() {
    let h = Harness::start().await;
    let mut listener = LoopbackRedirect::bind(0).await.unwrap();
    let (_url, pending) = h.start_consent(&listener.redirect_uri());
    let forged = format!(
        "{}?code=attacker-code&state=not-ours&usage_point_id={USAGE_POINT_ID}",
        listener.redirect_uri()
    );
    let browser = tokio::spawn(async move { reqwest::get(forged).await.unwrap() });
    let err = listener.wait(&pending).await.err().unwrap();
    assert_eq!(err.code, ErrorCode::UserActionNeededOauthOutdated);
    assert!(err.message.contains("state"), "{}", err.message);
    let page = browser.await.unwrap();
    assert_eq!(page.status(), 400);
    assert_eq!(h.sandbox.token_requests(), 0);
}

#[tokio::test]
async fn a_consent_coming_back_after_fifteen_minutes_is_refused() {
    let h = Harness::start().await;
    let mut listener = LoopbackRedirect::bind(0).await.unwrap();
    let (url, pending) = h.start_consent(&listener.redirect_uri());
    // Fourteen minutes is still fine (checked without consuming the wait).
    h.clock.advance(chrono::Duration::minutes(14));
    assert!(pending.remaining() > std::time::Duration::ZERO);
    h.clock.advance(chrono::Duration::minutes(2));
    let browser = tokio::spawn(async move { reqwest::get(url).await.unwrap() });
    let err = listener.wait(&pending).await.err().unwrap();
    assert_eq!(err.code, ErrorCode::UserActionNeededOauthOutdated);
    assert!(err.message.contains("expired"), "{}", err.message);
    assert_eq!(browser.await.unwrap().status(), 400);
    assert_eq!(h.sandbox.token_requests(), 0);
}

#[tokio::test]
async fn a_refused_consent_is_user_action_needed() {
    let h = Harness::start().await;
    h.sandbox.set_deny_consent(true);
    let mut listener = LoopbackRedirect::bind(0).await.unwrap();
    let (url, pending) = h.start_consent(&listener.redirect_uri());
    let browser = tokio::spawn(async move { reqwest::get(url).await.unwrap() });
    let err = listener.wait(&pending).await.err().unwrap();
    assert_eq!(err.code, ErrorCode::UserActionNeeded);
    assert!(err.message.contains("access_denied"), "{}", err.message);
    browser.await.unwrap();
}

#[tokio::test]
async fn the_token_is_refreshed_only_when_less_than_a_minute_is_left() {
    let h = Harness::start().await;
    h.consent().await;
    let first = h.manager.access_token(ACCOUNT, &h.config).await.unwrap();
    let old_refresh = h.refresh_token().await;
    h.expire_in(120).await;
    let same = h.manager.access_token(ACCOUNT, &h.config).await.unwrap();
    assert_eq!(same.expose(), first.expose());
    assert_eq!(h.sandbox.refresh_requests(), 0);
    h.clock.advance(chrono::Duration::seconds(90));
    let fresh = h.manager.access_token(ACCOUNT, &h.config).await.unwrap();
    assert_ne!(fresh.expose(), first.expose());
    assert_eq!(h.sandbox.refresh_requests(), 1);
    // The refresh token was rotated and the new one stored.
    let new_refresh = h.refresh_token().await;
    assert_ne!(new_refresh, old_refresh);
    assert!(h.sandbox.refresh_token_is_live(&new_refresh));
    assert!(!h.sandbox.refresh_token_is_live(&old_refresh));
    // Past the old token's expiry the run works with the refreshed one.
    h.clock.advance(chrono::Duration::seconds(60));
    h.run().await.unwrap();
    assert_eq!(h.sandbox.refresh_requests(), 1);
}

/// Issue 9: a run's own token refresh goes through its recording
/// transport; the cassette holds the token call with every token scrubbed.
#[tokio::test]
async fn a_recorded_run_holds_its_token_refresh_scrubbed() {
    let h = Harness::start().await;
    h.consent().await;
    let old_refresh = h.refresh_token().await;
    h.expire_in(30).await;
    let dir = h.kit.dir().join("cassettes");
    std::fs::create_dir(&dir).unwrap();
    let report = h
        .run_with(Some(gleaner_framework::CassetteMode::Record(dir.clone())))
        .await
        .unwrap();
    assert_eq!(h.sandbox.refresh_requests(), 1);
    let file = dir.join(format!("enedis-{}.json", report.run_id));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("grant_type=refresh_token"), "{text}");
    let new_refresh = h.refresh_token().await;
    let access = h.manager.load(ACCOUNT).await.unwrap().unwrap().access_token;
    for secret in [old_refresh.as_str(), new_refresh.as_str(), access.expose()] {
        assert!(!text.contains(secret), "a token is in the cassette");
    }
    assert!(
        text.contains("Bearer __TOKEN_"),
        "the API calls are recorded"
    );
}

/// A hook that stops the refresh forever at `stage` and says so.
fn crash_at(stage: RefreshStage) -> (RefreshHook, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let hook: RefreshHook = Arc::new(move |s| {
        let tx = tx.clone();
        Box::pin(async move {
            if s == stage {
                let _ = tx.send(());
                std::future::pending::<()>().await;
            }
        })
    });
    (hook, rx)
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_crash_between_refresh_and_use() {
    let h = Harness::start().await;
    h.consent().await;
    let old_refresh = h.refresh_token().await;
    h.expire_in(10).await;
    // A process refreshes and dies right after the save, before the
    // konnector got the access token.
    let (hook, mut reached) = crash_at(RefreshStage::Saved);
    let doomed = Arc::new(h.other_process(Some(hook)).await);
    let config = h.config.clone();
    let task = tokio::spawn({
        let doomed = Arc::clone(&doomed);
        async move { doomed.access_token(ACCOUNT, &config).await }
    });
    reached.recv().await.unwrap();
    task.abort();
    assert!(task.await.err().unwrap().is_cancelled());
    drop(doomed);
    // The provider has burnt the old refresh token...
    assert!(!h.sandbox.refresh_token_is_live(&old_refresh));
    // ...and the restarted process finds the new one in the store.
    let restarted = h.other_process(None).await;
    let stored = restarted.load(ACCOUNT).await.unwrap().unwrap();
    let new_refresh = stored.refresh_token.unwrap().expose().to_owned();
    assert_ne!(new_refresh, old_refresh);
    assert!(h.sandbox.refresh_token_is_live(&new_refresh));
    // It works: the next refresh is accepted.
    h.expire_in(10).await;
    restarted.access_token(ACCOUNT, &h.config).await.unwrap();
    assert_eq!(h.sandbox.refresh_requests(), 2);
}

#[tokio::test]
async fn the_only_window_is_the_write_itself() {
    let h = Harness::start().await;
    h.consent().await;
    let old_refresh = h.refresh_token().await;
    h.expire_in(10).await;
    let api_calls = h.sandbox.api_requests();
    // Stop right after the provider answered, before the write.
    let (hook, mut reached) = crash_at(RefreshStage::Answered);
    let doomed = Arc::new(h.other_process(Some(hook)).await);
    let config = h.config.clone();
    let task = tokio::spawn({
        let doomed = Arc::clone(&doomed);
        async move { doomed.access_token(ACCOUNT, &config).await }
    });
    reached.recv().await.unwrap();
    // At this point nothing but the answer exists: no API call was made
    // with the new token, and the next statement is the write.
    assert_eq!(h.sandbox.api_requests(), api_calls);
    task.abort();
    let _ = task.await;
    drop(doomed);
    // A crash exactly there loses the rotated token (rolled back), which is
    // why nothing else happens between the answer and the write.
    assert_eq!(h.refresh_token().await, old_refresh);
    assert!(!h.sandbox.refresh_token_is_live(&old_refresh));
    let err = h
        .manager
        .access_token(ACCOUNT, &h.config)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::UserActionNeededOauthOutdated);
}

#[tokio::test]
async fn concurrent_jobs_cause_one_refresh() {
    let h = Harness::start().await;
    h.consent().await;
    h.expire_in(10).await;
    // Two jobs of one process.
    let (a, b) = tokio::join!(
        h.manager.access_token(ACCOUNT, &h.config),
        h.manager.access_token(ACCOUNT, &h.config)
    );
    assert_eq!(a.unwrap().expose(), b.unwrap().expose());
    assert_eq!(h.sandbox.refresh_requests(), 1);
    // Two processes (two pools, two managers) on the same store.
    h.expire_in(10).await;
    let p1 = Arc::new(h.other_process(None).await);
    let p2 = Arc::new(h.other_process(None).await);
    let (c1, c2) = (h.config.clone(), h.config.clone());
    let j1 = tokio::spawn({
        let p1 = Arc::clone(&p1);
        async move { p1.access_token(ACCOUNT, &c1).await }
    });
    let j2 = tokio::spawn({
        let p2 = Arc::clone(&p2);
        async move { p2.access_token(ACCOUNT, &c2).await }
    });
    let (t1, t2) = (j1.await.unwrap().unwrap(), j2.await.unwrap().unwrap());
    assert_eq!(t1.expose(), t2.expose());
    assert_eq!(h.sandbox.refresh_requests(), 2);
}

#[tokio::test]
async fn a_refused_refresh_is_oauth_outdated_and_saves_nothing() {
    let h = Harness::start().await;
    h.consent().await;
    h.sandbox.revoke_consent();
    h.expire_in(10).await;
    let err = h.run().await.err().unwrap();
    assert_eq!(err.code, ErrorCode::UserActionNeededOauthOutdated);
    assert!(err.message.contains("invalid_grant"), "{}", err.message);
    assert!(err.code.needs_user() && !err.code.is_retryable());
    assert!(
        h.store
            .list(SERIES, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_revoked_access_token_is_refreshed_once_and_429_is_retried() {
    let h = Harness::start().await;
    h.consent().await;
    // The access token dies before its expiry: the API answers 401, the
    // konnector asks for a refresh once, and goes on.
    h.sandbox.revoke_access_tokens();
    h.sandbox.set_rate_limited(1);
    let report = h.run().await.unwrap();
    assert_eq!(h.sandbox.refresh_requests(), 1);
    assert!(report.retries >= 1, "the 429 was retried");
    assert!(report.counts[SERIES].created >= 12);
}

#[tokio::test]
async fn without_a_token_store_the_run_says_so() {
    let h = Harness::start().await;
    h.consent().await;
    let account = Account {
        id: ACCOUNT.into(),
        konnector: "enedis".into(),
        label: "maison".into(),
        fields: BTreeMap::from([("usage_point_id".to_owned(), USAGE_POINT_ID.to_owned())]),
        sealed_secrets: Vec::new(),
        endpoint: Some(h.sandbox.base_url()),
        created_at: Utc::now(),
        folder: Account::default_folder("Enedis", ACCOUNT),
    };
    let env = RunEnv {
        retry: RetryPolicy::default(),
        ..h.kit.env().clone()
    };
    let err = run_konnector(
        &Enedis::new().unwrap(),
        &account,
        secrets(),
        &env,
        RunOptions::default(),
    )
    .await
    .err()
    .unwrap();
    assert!(err.message.contains("token store"), "{}", err.message);
}

#[tokio::test]
async fn client_credentials_are_fetched_once_then_reused_until_expiry() {
    let h = Harness::start().await;
    let mut config = h.config.clone();
    config.grant = gleaner_framework::manifest::OAuthGrant::ClientCredentials;
    config.pkce = false;
    let first = h.manager.access_token("acc-cc", &config).await.unwrap();
    let again = h.manager.access_token("acc-cc", &config).await.unwrap();
    assert_eq!(first.expose(), again.expose());
    assert_eq!(h.sandbox.token_requests(), 1);
    assert!(
        h.manager
            .load("acc-cc")
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .is_none()
    );
    h.clock
        .advance(chrono::Duration::seconds(ACCESS_TOKEN_LIFETIME - 30));
    let fresh = h.manager.access_token("acc-cc", &config).await.unwrap();
    assert_ne!(fresh.expose(), first.expose());
    assert_eq!(h.sandbox.token_requests(), 2);
    // A wrong client secret is the client's login failing.
    config.client_secret = Some(Secret::new("not-the-secret"));
    let err = h
        .manager
        .access_token("acc-cc2", &config)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::LoginFailed);
    assert!(!err.message.contains("not-the-secret"), "{}", err.message);
}
