//! [`Harness`]: everything a konnector test needs around one run: a
//! temporary store, vault and files tree, accounts, the run itself (as the
//! CLI and the scheduler run it, through [`run_konnector`]), the stored
//! documents and files, and the run's logs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gleaner_framework::clock::{Clock, ManualClock, SystemClock};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::manifest::OAuthGrant;
use gleaner_framework::oauth::{LoopbackRedirect, OAuthConfig, TokenManager, flow};
use gleaner_framework::session::Sessions;
use gleaner_framework::store::{
    Account, AccountStore, DocStore, FileStore, SqliteStore, StoredDoc,
};
use gleaner_framework::twofa::{LoopbackLinks, Unattended};
use gleaner_framework::vault::{KdfParams, Vault};
use gleaner_framework::{
    ErrorCode, Konnector, KonnectorError, RunEnv, RunOptions, RunReport, Secret, run_konnector,
};
use tempfile::TempDir;
use tracing::instrument::WithSubscriber;

use crate::Error;
use crate::logs::LogCapture;

/// A retry policy fast enough for tests: two retries, millisecond backoffs,
/// `Retry-After` honoured up to one second.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(1),
    }
}

/// An account added by [`Harness::account`], with its secrets in clear for
/// the runs (they are also sealed into the store, as the CLI seals them).
#[derive(Clone)]
pub struct TestAccount {
    /// The account as stored.
    pub account: Account,
    /// Its secret fields.
    pub secrets: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for TestAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAccount")
            .field("account", &self.account.id)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TestAccount {
    /// The account's id.
    pub fn id(&self) -> &str {
        &self.account.id
    }

    /// A copy with secret `name` replaced by `value` (a wrong password).
    pub fn with_secret(&self, name: &str, value: &str) -> Self {
        let mut copy = self.clone();
        copy.secrets.insert(name.to_owned(), Secret::new(value));
        copy
    }
}

/// How a [`Harness`] is built; see [`Harness::builder`].
#[derive(Debug, Clone)]
pub struct HarnessBuilder {
    clock: Option<ManualClock>,
    passphrase: Option<String>,
    sessions: bool,
    retry: RetryPolicy,
}

impl HarnessBuilder {
    /// Runs, sessions and OAuth tokens read this clock instead of the
    /// system's.
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A passphrase vault (Argon2id with test parameters) instead of a key
    /// file.
    pub fn passphrase(mut self, passphrase: &str) -> Self {
        self.passphrase = Some(passphrase.to_owned());
        self
    }

    /// Whether login sessions are kept between runs (default: yes, as in
    /// the CLI).
    pub fn sessions(mut self, on: bool) -> Self {
        self.sessions = on;
        self
    }

    /// The HTTP retry policy (default: [`fast_retry`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Creates the temporary directory, store, vault and files tree.
    pub async fn build(self) -> Result<Harness, Error> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(&dir.path().join("gleaner.db")).await?;
        let vault = Arc::new(match &self.passphrase {
            Some(p) => Vault::create_with_passphrase(
                &dir.path().join("vault.json"),
                &Secret::new(p.as_str()),
                KdfParams::INSECURE_FOR_TESTS,
            )?,
            None => Vault::open_or_create(&dir.path().join("vault.key"))?,
        });
        let files = FileStore::open(&dir.path().join("files"))?;
        let clock: Arc<dyn Clock> = match &self.clock {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(SystemClock),
        };
        let oauth = Arc::new(
            TokenManager::new(Arc::new(store.clone()), Arc::clone(&vault))?
                .with_clock(clock.clone()),
        );
        Ok(Harness {
            dir,
            env: RunEnv {
                store: Arc::new(store.clone()),
                files: files.clone(),
                retry: self.retry,
            },
            store,
            vault,
            files,
            clock,
            manual: self.clock,
            sessions: self.sessions,
            oauth,
            logs: LogCapture::new(),
        })
    }
}

/// A temporary installation for one test: a [`SqliteStore`], a vault, a
/// [`FileStore`], an OAuth [`TokenManager`], a clock and a [`LogCapture`],
/// all under one temporary directory removed on drop.
///
/// ```no_run
/// # async fn demo(konnector: &dyn gleaner_framework::Konnector) -> Result<(), gleaner_testing::Error> {
/// let h = gleaner_testing::Harness::new().await?;
/// let account = h
///     .account("free-mobile", &[("login", "12345678")], &[("password", "pw")], Some("http://127.0.0.1:4000"))
///     .await?;
/// let report = h.run(konnector, &account).await?;
/// assert!(report.created() > 0);
/// assert_eq!(h.docs("io.cozy.bills").await?.len(), h.count("io.cozy.bills").await? as usize);
/// assert!(!h.logs().contains("pw"));
/// # Ok(()) }
/// ```
pub struct Harness {
    dir: TempDir,
    store: SqliteStore,
    vault: Arc<Vault>,
    files: FileStore,
    env: RunEnv,
    clock: Arc<dyn Clock>,
    manual: Option<ManualClock>,
    sessions: bool,
    oauth: Arc<TokenManager>,
    logs: LogCapture,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("dir", &self.dir.path())
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// A harness with the defaults: key-file vault, system clock, sessions
    /// on, [`fast_retry`].
    pub async fn new() -> Result<Self, Error> {
        Self::builder().build().await
    }

    /// A builder to change the defaults.
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            clock: None,
            passphrase: None,
            sessions: true,
            retry: fast_retry(),
        }
    }

    /// The temporary data directory (store, vault, `files/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The vault.
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The files tree.
    pub fn files(&self) -> &FileStore {
        &self.files
    }

    /// What [`run_konnector`] is given: store, files, retry policy.
    pub fn env(&self) -> &RunEnv {
        &self.env
    }

    /// The clock runs read.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// The manual clock, when the builder was given one.
    pub fn manual_clock(&self) -> Option<&ManualClock> {
        self.manual.as_ref()
    }

    /// The login sessions kept in this store.
    pub fn sessions(&self) -> Sessions {
        Sessions::new(Arc::new(self.store.clone()), Arc::clone(&self.vault))
    }

    /// The OAuth token manager runs share.
    pub fn oauth(&self) -> &Arc<TokenManager> {
        &self.oauth
    }

    /// The logs captured from every [`Harness::run`] (and from anything run
    /// under [`LogCapture::set_default`]).
    pub fn logs(&self) -> &LogCapture {
        &self.logs
    }

    /// Adds an account of konnector `slug` to the store, its secrets sealed
    /// by the vault, its folder the CLI's default (`<slug>/<id>`), pointed
    /// at `endpoint` when given (a sandbox). Each call makes a new account
    /// (a fresh id), even with the same fields.
    pub async fn account(
        &self,
        slug: &str,
        fields: &[(&str, &str)],
        secrets: &[(&str, &str)],
        endpoint: Option<&str>,
    ) -> Result<TestAccount, Error> {
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        self.account_owned(slug, owned(fields), owned(secrets), endpoint)
            .await
    }

    /// [`Harness::account`] with owned pairs (as a sandbox hands them).
    pub async fn account_owned(
        &self,
        slug: &str,
        fields: Vec<(String, String)>,
        secrets: Vec<(String, String)>,
        endpoint: Option<&str>,
    ) -> Result<TestAccount, Error> {
        let id = format!("acc-{}", gleaner_framework::ids::new_id());
        let secrets: BTreeMap<String, Secret> = secrets
            .into_iter()
            .map(|(k, v)| (k, Secret::new(v)))
            .collect();
        let fields: BTreeMap<String, String> = fields.into_iter().collect();
        // Labels are unique in a store: the id makes two accounts with the
        // same login possible.
        let label = match fields.values().next() {
            Some(first) => format!("{first} ({id})"),
            None => id.clone(),
        };
        let account = Account {
            konnector: slug.to_owned(),
            label,
            fields,
            sealed_secrets: self.vault.seal(&id, &secrets)?,
            endpoint: endpoint.map(str::to_owned),
            created_at: Utc::now(),
            folder: Account::default_folder(slug, &id),
            id,
        };
        self.store.put_account(&account).await?;
        Ok(TestAccount { account, secrets })
    }

    /// An account of konnector `slug` on a running sandbox: its demo fields
    /// and secrets, pointed at its base URL.
    pub async fn sandbox_account(
        &self,
        slug: &str,
        sandbox: &gleaner_sandbox_kit::RunningSandbox,
    ) -> Result<TestAccount, Error> {
        self.account_owned(
            slug,
            sandbox.fields.clone(),
            sandbox.secrets.clone(),
            Some(&sandbox.base_url),
        )
        .await
    }

    /// Stores an account the test built itself (a fixed id or folder), its
    /// `secrets` sealed into it as the CLI seals them.
    pub async fn add_account(
        &self,
        mut account: Account,
        secrets: BTreeMap<String, Secret>,
    ) -> Result<TestAccount, Error> {
        account.sealed_secrets = self.vault.seal(&account.id, &secrets)?;
        self.store.put_account(&account).await?;
        Ok(TestAccount { account, secrets })
    }

    /// The run options [`Harness::run`] uses: sessions (when on), the OAuth
    /// token manager, the unattended second-factor channel behind
    /// [`LoopbackLinks`] (a sandbox's bank link on loopback is followed with
    /// one GET, as `gleaner demo` does; any other question fails as
    /// unattended).
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            oauth: Some(Arc::clone(&self.oauth)),
            sessions: self.sessions.then(|| self.sessions()),
            clock: self.clock(),
            two_factor: Arc::new(LoopbackLinks::new(Arc::new(Unattended))),
            ..RunOptions::default()
        }
    }

    /// Runs `konnector` for `account` through [`run_konnector`], its logs
    /// captured. For an OAuth konnector of the authorization-code grant
    /// whose account has no tokens yet, the consent is given first, as
    /// `gleaner demo` gives it: the consent page (a sandbox's approves at
    /// once) is fetched, the redirect comes back to a loopback listener,
    /// and the code is exchanged; the redirect's fields are added to the
    /// account.
    pub async fn run(
        &self,
        konnector: &dyn Konnector,
        account: &TestAccount,
    ) -> Result<RunReport, KonnectorError> {
        self.run_with(konnector, account, self.run_options()).await
    }

    /// [`Harness::run`] with explicit options (a 2FA channel, a run id).
    pub async fn run_with(
        &self,
        konnector: &dyn Konnector,
        account: &TestAccount,
        options: RunOptions,
    ) -> Result<RunReport, KonnectorError> {
        let dispatch = self.logs.dispatch().clone();
        async {
            let account = self.consent_if_needed(konnector, account).await?;
            run_konnector(
                konnector,
                &account.account,
                account.secrets.clone(),
                &self.env,
                options,
            )
            .await
        }
        .with_subscriber(dispatch)
        .await
    }

    /// Gives the OAuth consent (authorization-code grant) when the account
    /// has no tokens yet; returns the account with the redirect's fields.
    async fn consent_if_needed(
        &self,
        konnector: &dyn Konnector,
        account: &TestAccount,
    ) -> Result<TestAccount, KonnectorError> {
        let manifest = konnector.manifest();
        let Some(spec) = &manifest.oauth else {
            return Ok(account.clone());
        };
        if spec.grant != OAuthGrant::AuthorizationCode {
            return Ok(account.clone());
        }
        if self.oauth.load(account.id()).await?.is_some() {
            // Consented by an earlier run: the redirect's fields are in the
            // stored account, not in the caller's copy.
            let mut current = account.clone();
            if let Some(stored) = self.store.get_account(account.id()).await? {
                current.account.fields = stored.fields;
            }
            return Ok(current);
        }
        let config =
            OAuthConfig::resolve(spec, account.account.endpoint.as_deref(), &account.secrets)?;
        let mut listener = LoopbackRedirect::bind(0).await?;
        let (url, pending) = flow::start(&config, &listener.redirect_uri(), self.clock())?;
        let browser = tokio::spawn(async move {
            reqwest::get(url)
                .await
                .and_then(reqwest::Response::error_for_status)
                .map(|_| ())
                .map_err(|e| e.without_url().to_string())
        });
        let callback = listener.wait(&pending).await;
        let page = browser.await.map_err(|e| {
            KonnectorError::new(
                ErrorCode::UnknownError,
                format!("the consent page task stopped: {e}"),
            )
        })?;
        let callback = callback?;
        if let Err(e) = page {
            return Err(KonnectorError::new(
                ErrorCode::UnknownError,
                format!("the consent page failed: {e}"),
            ));
        }
        let tokens = pending.exchange(&callback).await?;
        let mut consented = account.clone();
        consented.account.fields.extend(callback.fields);
        self.store.put_account(&consented.account).await?;
        self.oauth.save(consented.id(), &tokens).await?;
        Ok(consented)
    }

    /// Every stored document of `doctype` (all accounts), in id order.
    pub async fn docs(&self, doctype: &str) -> Result<Vec<StoredDoc>, Error> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map(|d: &StoredDoc| d.id.clone());
            let page = self
                .store
                .list(doctype, None, after.as_deref(), 500)
                .await?;
            let done = page.len() < 500;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Every stored document, by doctype.
    pub async fn all_docs(&self) -> Result<BTreeMap<String, Vec<StoredDoc>>, Error> {
        let mut out = BTreeMap::new();
        for doctype in self.counts().await?.into_keys() {
            let docs = self.docs(&doctype).await?;
            out.insert(doctype, docs);
        }
        Ok(out)
    }

    /// How many documents of `doctype` are stored.
    pub async fn count(&self, doctype: &str) -> Result<u64, Error> {
        Ok(self.counts().await?.get(doctype).copied().unwrap_or(0))
    }

    /// How many documents are stored, by doctype.
    pub async fn counts(&self) -> Result<BTreeMap<String, u64>, Error> {
        Ok(self.store.count_by_doctype().await?)
    }

    /// Panics unless the store holds no document, `account` has no saved
    /// state and the files tree (staging folders included) holds no file:
    /// what a failed first run must leave.
    pub async fn assert_nothing_saved(&self, account: &TestAccount) {
        let counts = self.counts().await.expect("the store answers");
        assert!(
            counts.values().all(|n| *n == 0),
            "documents were saved: {counts:?}"
        );
        let state = self
            .store
            .state(account.id())
            .await
            .expect("the store answers");
        assert!(state.is_none(), "a state was saved: {state:?}");
        let files = self.file_paths().expect("the files tree reads");
        assert!(files.is_empty(), "files were left behind: {files:?}");
    }

    /// Every regular file under the files tree (staging folders included),
    /// as `/`-separated paths relative to its root.
    pub fn file_paths(&self) -> Result<BTreeSet<String>, Error> {
        let root = self.files.root();
        let mut out = BTreeSet::new();
        for path in files_under(root)? {
            if let Ok(rel) = path.strip_prefix(root) {
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        Ok(out)
    }

    /// Every regular file under the data directory (store and its WAL,
    /// vault files, files tree): what a leak scan reads.
    pub fn data_files(&self) -> Result<Vec<PathBuf>, Error> {
        Ok(files_under(self.dir.path())?)
    }
}

/// Every regular file under `dir`, recursively (none when it is missing).
pub fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accounts_are_sealed_stored_and_distinct() {
        let h = Harness::builder()
            .passphrase("test phrase")
            .build()
            .await
            .unwrap();
        let a = h
            .account(
                "demo",
                &[("login", "jeanne")],
                &[("password", "pw-1234")],
                None,
            )
            .await
            .unwrap();
        let b = h
            .account(
                "demo",
                &[("login", "jeanne")],
                &[("password", "pw-1234")],
                None,
            )
            .await
            .unwrap();
        assert_ne!(a.id(), b.id());
        let stored = h.store().get_account(a.id()).await.unwrap().unwrap();
        assert_eq!(stored.fields["login"], "jeanne");
        let opened = h.vault().open(a.id(), &stored.sealed_secrets).unwrap();
        assert_eq!(opened["password"].expose(), "pw-1234");
        assert!(
            h.data_files()
                .unwrap()
                .iter()
                .any(|f| f.ends_with("vault.json"))
        );
        assert!(h.file_paths().unwrap().is_empty());
        assert!(h.counts().await.unwrap().is_empty());
        let wrong = a.with_secret("password", "nope");
        assert_eq!(wrong.secrets["password"].expose(), "nope");
    }
}
