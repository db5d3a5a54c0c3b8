//! [`RunContext`]: the one handle a konnector run gets.
//!
//! It hands out the account's fields and secrets, the HTTP client (with the
//! manifest's host allow-list), the konnector's saved state, and the
//! staging area: [`RunContext::save`] and [`RunContext::save_bill`] validate
//! and stage documents and files, and nothing reaches the store until the
//! run returns `Ok` (see [`crate::runner`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use url::Url;

use crate::browser::{BrowserConfig, BrowserSession};
use crate::cassette::Recorder;
use crate::clock::{Clock, SystemClock};
use crate::doctypes::{Bill, Doctype, FileDoc, FileMetadata};
use crate::error::{ErrorCode, KonnectorError, Result};
use crate::http::{HttpClient, Transport, display_url};
use crate::manifest::Manifest;
use crate::oauth::{OAuthConfig, TokenManager};
use crate::secret::Secret;
use crate::session::{Restore, Sessions};
use crate::store::{DocStore, FileStore, StagedDoc, StagedFile};
use crate::twofa::{TwoFactorChannel, TwoFactorKind, TwoFactorRequest};

/// How many codes a run may submit before it gives up with
/// `USER_ACTION_NEEDED.WRONG_TWOFA_CODE`.
pub const MAX_TWO_FACTOR_ATTEMPTS: u32 = 3;

/// Time a run spent waiting for a person's second-factor answer, shared
/// with the runner so the run's time limit does not count it.
#[derive(Debug, Clone, Default)]
pub struct TwoFactorWaits(Arc<TwoFactorWaitsInner>);

#[derive(Debug, Default)]
struct TwoFactorWaitsInner {
    asking: AtomicBool,
    waited_ms: AtomicU64,
}

impl TwoFactorWaits {
    /// Whether a question is waiting for an answer now.
    pub fn asking(&self) -> bool {
        self.0.asking.load(Ordering::SeqCst)
    }

    /// Total time spent waiting for answers so far.
    pub fn waited(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.waited_ms.load(Ordering::SeqCst))
    }

    fn set_asking(&self, asking: bool) {
        self.0.asking.store(asking, Ordering::SeqCst);
    }

    fn add(&self, d: std::time::Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.0.waited_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Progress of a run, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Items done.
    pub done: u64,
    /// Items in all, when known.
    pub total: Option<u64>,
    /// What is being done.
    pub message: String,
}

/// Receives progress reports.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A file to save with a bill: where to download it and what it is.
#[derive(Debug, Clone)]
pub struct BillFile {
    /// The file name (sanitized when saved).
    pub name: String,
    /// Where to download it (an allowed host).
    pub url: String,
    /// The MIME type the file must have, such as `application/pdf`.
    pub mime: &'static str,
    /// Metadata for the `io.cozy.files` document.
    pub metadata: FileMetadata,
}

/// What one run staged and did, handed to the runner at the end.
pub(crate) struct Staged {
    pub docs: Vec<StagedDoc>,
    pub deletes: Vec<(String, String)>,
    pub files: Vec<StagedFile>,
    pub state: serde_json::Value,
    pub warnings: Vec<String>,
    pub files_downloaded: u64,
    pub files_reused: u64,
}

/// A file staged by [`RunContext::stage_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFileInfo {
    /// Where it will be, relative to the files root.
    pub rel_path: String,
    /// Its SHA-256, in hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub mime: String,
}

/// One account's stored documents, read-only (see
/// [`RunContext::stored_documents`]).
#[derive(Clone)]
pub struct AccountDocs {
    store: Arc<dyn DocStore>,
    account_id: String,
}

impl AccountDocs {
    /// A view of `account_id`'s documents in `store`.
    pub fn new(store: Arc<dyn DocStore>, account_id: impl Into<String>) -> Self {
        Self {
            store,
            account_id: account_id.into(),
        }
    }

    /// The account id.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// Every stored document of `doctype` of this account, in id order
    /// (with `_id`, `_rev` and `cozyMetadata`).
    pub async fn all(&self, doctype: &str) -> Result<Vec<crate::store::StoredDoc>> {
        const PAGE: u32 = 1000;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list(doctype, Some(&self.account_id), after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE as usize;
            after = page.last().map(|d| d.id.clone());
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// The stored document of `doctype` with this key, if any (without
    /// `_id`, `_rev` or `cozyMetadata`).
    pub async fn by_key(&self, doctype: &str, key: &str) -> Result<Option<crate::store::KeyedDoc>> {
        self.store.get_by_key(&self.account_id, doctype, key).await
    }
}

/// The account a run is for, as the context needs it.
pub struct RunAccount {
    /// The account id.
    pub id: String,
    /// The account's label.
    pub label: String,
    /// The non-secret fields.
    pub fields: BTreeMap<String, String>,
    /// The secret fields, opened.
    pub secrets: BTreeMap<String, Secret>,
    /// The account's folder in the files tree (its own, unique; see
    /// [`crate::store::Account::folder`]).
    pub folder: String,
}

/// The handle a konnector run works through.
pub struct RunContext {
    run_id: String,
    account: RunAccount,
    identifier: Option<String>,
    manifest: Arc<Manifest>,
    base_url: Url,
    http: HttpClient,
    store: Arc<dyn DocStore>,
    files: FileStore,
    account_dir: String,
    docs: Vec<StagedDoc>,
    doc_index: HashMap<(&'static str, String), usize>,
    staged_files: Vec<StagedFile>,
    deletes: Vec<(String, String)>,
    state: serde_json::Value,
    /// The framework's own part of the state ([`FRAMEWORK_STATE_KEY`]),
    /// kept apart from the konnector's.
    framework_state: serde_json::Map<String, serde_json::Value>,
    bank: crate::bank::BankRun,
    warnings: Vec<String>,
    progress: Option<ProgressFn>,
    two_factor: Arc<dyn TwoFactorChannel>,
    two_factor_attempts: u32,
    two_factor_waits: TwoFactorWaits,
    files_downloaded: u64,
    files_reused: u64,
    oauth: Option<OAuthSession>,
    sessions: Option<Sessions>,
    session_state: Option<serde_json::Value>,
    session_plan: SessionPlan,
    clock: Arc<dyn Clock>,
    token_transport: Option<Arc<dyn Transport>>,
    recorder: Option<Recorder>,
    allowed_hosts: Vec<String>,
    browser: Option<BrowserSession>,
}

/// Where an OAuth konnector's run gets its access tokens.
pub struct OAuthSession {
    /// The token manager (shared by the process's runs).
    pub manager: Arc<TokenManager>,
    /// The manifest's `[oauth]` section, resolved for the account.
    pub config: OAuthConfig,
}

/// What the runner does with the login session at the end of a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SessionPlan {
    /// Leave the saved session as it is.
    Keep,
    /// Save the cookie jar with this state, living this long.
    Save(Duration, serde_json::Value),
    /// Delete the saved session.
    Clear,
}

/// Everything [`RunContext::new`] needs.
pub struct ContextParts {
    /// The run's id.
    pub run_id: String,
    /// The account.
    pub account: RunAccount,
    /// The konnector's manifest.
    pub manifest: Arc<Manifest>,
    /// The base URL (the manifest's, or the account's endpoint).
    pub base_url: Url,
    /// The HTTP client.
    pub http: HttpClient,
    /// The document store, for lookups.
    pub store: Arc<dyn DocStore>,
    /// The file store.
    pub files: FileStore,
    /// The state the last successful run saved.
    pub state: serde_json::Value,
    /// Progress receiver.
    pub progress: Option<ProgressFn>,
    /// Where second-factor questions go.
    pub two_factor: Arc<dyn TwoFactorChannel>,
}

impl RunContext {
    /// Builds a context (the runner does this; tests may too).
    pub fn new(parts: ContextParts) -> Self {
        let identifier = parts
            .manifest
            .identifier_field()
            .and_then(|f| parts.account.fields.get(f).cloned());
        let account_dir = parts.account.folder.trim_matches('/').to_owned();
        // The browser's hosts: the manifest's, plus the base URL's (the
        // account's endpoint); the runner passes its HTTP client's exact
        // list with `with_allowed_hosts`.
        let mut allowed_hosts = parts.manifest.hosts.clone();
        if let Some(host) = parts.base_url.host_str() {
            let entry = match parts.base_url.port_or_known_default() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            if !allowed_hosts.contains(&entry) && !allowed_hosts.iter().any(|h| h == host) {
                allowed_hosts.push(entry);
            }
        }
        let (state, framework_state) = split_state(parts.state);
        Self {
            run_id: parts.run_id,
            account: parts.account,
            identifier,
            manifest: parts.manifest,
            base_url: parts.base_url,
            http: parts.http,
            store: parts.store,
            files: parts.files,
            account_dir,
            docs: Vec::new(),
            doc_index: HashMap::new(),
            staged_files: Vec::new(),
            deletes: Vec::new(),
            state,
            framework_state,
            bank: crate::bank::BankRun::default(),
            warnings: Vec::new(),
            progress: parts.progress,
            two_factor: parts.two_factor,
            two_factor_attempts: 0,
            two_factor_waits: TwoFactorWaits::default(),
            files_downloaded: 0,
            files_reused: 0,
            oauth: None,
            sessions: None,
            session_state: None,
            session_plan: SessionPlan::Keep,
            clock: Arc::new(SystemClock),
            token_transport: None,
            recorder: None,
            allowed_hosts,
            browser: None,
        }
    }

    /// Sets the hosts the run may contact (the runner passes the list its
    /// HTTP client enforces, so the browser enforces the same).
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    /// The run's headless browser, started on first use (see
    /// [`crate::browser`]): it may contact only the hosts the HTTP client
    /// may, and it is closed when the run ends, however it ends.
    ///
    /// A machine without chromium gives `UNKNOWN_ERROR.BROWSER_MISSING`.
    pub async fn browser(&mut self) -> Result<&mut BrowserSession> {
        if self.browser.is_none() {
            let config = BrowserConfig::new(self.allowed_hosts.clone());
            self.browser = Some(BrowserSession::launch(config).await?);
        }
        self.browser.as_mut().ok_or_else(|| {
            KonnectorError::new(ErrorCode::UnknownError, "the browser is not running")
        })
    }

    /// Closes the run's browser, if one was started (the runner does this
    /// when the konnector returns; dropping the context does it too). The
    /// DOM snapshots it took go into the run's cassette when the run is
    /// recorded.
    pub async fn close_browser(&mut self) {
        if let Some(browser) = self.browser.take() {
            // A recorded run keeps the pages the browser snapshotted.
            for snap in browser.snapshots() {
                self.record_snapshot(&snap.url, &snap.html);
            }
            browser.close().await;
        }
    }

    /// Records the run's browser snapshots into `recorder` (the runner does
    /// this when the run is recorded to a cassette).
    pub fn with_recorder(mut self, recorder: Option<Recorder>) -> Self {
        self.recorder = recorder;
        self
    }

    /// Adds a page's DOM (as HTML) to the run's cassette when the run is
    /// recorded; does nothing otherwise. The browser calls it for each
    /// page it visits.
    pub fn record_snapshot(&self, url: &str, html: &str) {
        if let Some(r) = &self.recorder {
            r.add_snapshot(url, html);
        }
    }

    /// Sets the run's clock (the runner passes [`crate::RunOptions::clock`];
    /// a replay passes the cassette's recording time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends the run's own OAuth token calls through `transport` (the
    /// runner does this under a cassette, so that refreshes are recorded
    /// and replayed with the rest).
    pub fn with_token_transport(mut self, transport: Option<Arc<dyn Transport>>) -> Self {
        self.token_transport = transport;
        self
    }

    /// The current time by the run's clock. Konnectors read time only here
    /// (never `Utc::now()`), so that a replay runs at its recorded "now".
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Today's date by the run's clock, **in UTC** (not the machine's time
    /// zone): a run at 00:30 in Paris in winter is still yesterday here. A
    /// konnector that needs a provider's local date converts
    /// [`RunContext::now`] itself.
    pub fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    /// The run's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// Gives the run its OAuth token source (the runner does this for a
    /// konnector whose manifest has an `[oauth]` section).
    pub fn set_oauth(&mut self, session: OAuthSession) {
        self.oauth = Some(session);
    }

    fn oauth_session(&self) -> Result<&OAuthSession> {
        self.oauth.as_ref().ok_or_else(|| {
            KonnectorError::new(
                ErrorCode::UnknownError,
                format!(
                    "konnector {} asked for an OAuth token, but the run has no token store (no [oauth] section, or RunOptions::oauth unset)",
                    self.manifest.slug
                ),
            )
        })
    }

    /// A valid OAuth access token for the account, refreshed first when it
    /// is about to expire (see [`crate::oauth::tokens`]). Send it with
    /// [`HttpClient::get_bearer`]. A refused refresh is
    /// `USER_ACTION_NEEDED.OAUTH_OUTDATED`.
    pub async fn access_token(&self) -> Result<Secret> {
        let session = self.oauth_session()?;
        session
            .manager
            .access_token_via(
                &self.account.id,
                &session.config,
                self.token_transport.clone(),
            )
            .await
    }

    /// A new access token after the provider refused `rejected` (a 401 on an
    /// API call). Refreshes only if no other job did already.
    pub async fn refresh_access_token(&self, rejected: &Secret) -> Result<Secret> {
        let session = self.oauth_session()?;
        session
            .manager
            .refresh_rejected_via(
                &self.account.id,
                &session.config,
                rejected,
                self.token_transport.clone(),
            )
            .await
    }

    /// Gives the context a place to keep login sessions (the runner does
    /// this when it has one; without it sessions are off).
    pub fn with_sessions(mut self, sessions: Option<Sessions>) -> Self {
        self.sessions = sessions;
        self
    }

    /// Restores the login session the last run saved: loads its cookie jar
    /// into the HTTP client and its state into
    /// [`RunContext::session_state`]. Returns whether a live session was
    /// restored; the konnector must still check it with one request and
    /// call [`RunContext::clear_session`] and log in if the provider says it
    /// is dead.
    ///
    /// An expired session is not restored. One that does not open (tampered
    /// or sealed for another account) is deleted and recorded as a warning;
    /// the run goes on as if there were none.
    pub async fn restore_session(&mut self) -> Result<bool> {
        let Some(sessions) = &self.sessions else {
            return Ok(false);
        };
        match sessions.restore(&self.account.id).await? {
            Restore::None => Ok(false),
            Restore::Expired => {
                tracing::info!("the saved login session expired");
                Ok(false)
            }
            Restore::Discarded(why) => {
                self.warn(format!(
                    "the saved login session was discarded, logging in again: {why}"
                ));
                Ok(false)
            }
            Restore::Live(session) => {
                self.http.import_cookies(&session.cookies)?;
                self.session_state = Some(session.state);
                tracing::info!(expires_at = %session.expires_at, "login session restored");
                Ok(true)
            }
        }
    }

    /// The state saved with the restored session, if one was restored.
    pub fn session_state(&self) -> Option<&serde_json::Value> {
        self.session_state.as_ref()
    }

    /// Asks to keep the login session: at the end of the run (successful
    /// **or not**) the HTTP client's cookie jar and `state` are sealed and
    /// saved, to be restored by the next run until `ttl` has passed. Call it
    /// right after a successful login (or a successful reuse, to extend the
    /// expiry). See [`crate::session`] for why failed runs keep it too.
    pub fn save_session(&mut self, ttl: Duration, state: serde_json::Value) {
        self.session_plan = SessionPlan::Save(ttl, state);
    }

    /// The provider says the session is dead: empties the cookie jar and
    /// deletes the saved session at the end of the run (unless
    /// [`RunContext::save_session`] is called again after a new login).
    pub fn clear_session(&mut self) {
        self.http.clear_cookies();
        self.session_state = None;
        self.session_plan = SessionPlan::Clear;
    }

    /// Applies the session plan; called by the runner at the end of a run.
    /// Returns a warning when the session could not be saved.
    pub(crate) async fn finish_session(&mut self) -> Option<String> {
        let sessions = self.sessions.clone()?;
        let plan = std::mem::replace(&mut self.session_plan, SessionPlan::Keep);
        let outcome = match plan {
            SessionPlan::Keep => return None,
            SessionPlan::Clear => sessions.clear(&self.account.id).await,
            SessionPlan::Save(ttl, state) => match self.http.export_cookies() {
                Ok(cookies) => sessions.save(&self.account.id, &cookies, &state, ttl).await,
                Err(e) => Err(e),
            },
        };
        outcome
            .err()
            .map(|e| format!("the login session could not be saved: {}", e.message))
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The account's id.
    pub fn account_id(&self) -> &str {
        &self.account.id
    }

    /// The account's identifier (the login), if the manifest declares one.
    pub fn identifier(&self) -> Option<&str> {
        self.identifier.as_deref()
    }

    /// The konnector's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A non-secret field of the account.
    pub fn field(&self, name: &str) -> Result<&str> {
        self.account
            .fields
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| {
                KonnectorError::invalid_data(format!(
                    "account {} has no field `{name}`",
                    self.account.id
                ))
            })
    }

    /// A secret field of the account.
    ///
    /// A secret the account does not hold is `LOGIN_FAILED.NEEDS_SECRET`:
    /// the person never gave it, and only they can. This is the only place
    /// that code comes from for an account's secrets: they were opened by
    /// the vault before the run started, and a vault that cannot open them
    /// ends the run before the konnector runs, as
    /// `UNKNOWN_ERROR.VAULT_FAILED` ([`KonnectorError::vault`]).
    pub fn secret(&self, name: &str) -> Result<&Secret> {
        self.account.secrets.get(name).ok_or_else(|| {
            KonnectorError::new(
                ErrorCode::LoginFailedNeedsSecret,
                format!("account {} has no secret `{name}`", self.account.id),
            )
        })
    }

    /// The HTTP client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// A URL relative to the base URL.
    pub fn url(&self, path: &str) -> Result<String> {
        self.base_url.join(path).map(String::from).map_err(|e| {
            KonnectorError::new(
                ErrorCode::UnknownError,
                format!(
                    "cannot join `{path}` to {}: {e}",
                    display_url(&self.base_url)
                ),
            )
        })
    }

    /// The state the last successful run saved (`null` the first time).
    ///
    /// The framework keeps its own part (the bank cursors of
    /// [`crate::bank`]) under the key [`FRAMEWORK_STATE_KEY`] of the stored
    /// state; it is taken out before the konnector sees the state and put
    /// back at the commit, so a konnector neither sees nor overwrites it.
    pub fn state(&self) -> &serde_json::Value {
        &self.state
    }

    /// Replaces the state; it is committed with the run's documents.
    pub fn set_state(&mut self, state: serde_json::Value) {
        self.state = state;
    }

    /// Records a warning for the run report.
    pub fn warn(&mut self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(%message, "konnector warning");
        self.warnings.push(message);
    }

    /// Reports progress.
    pub fn progress(&self, done: u64, total: Option<u64>, message: impl Into<String>) {
        if let Some(p) = &self.progress {
            p(&Progress {
                done,
                total,
                message: message.into(),
            });
        }
    }

    /// Asks the person for a second-factor code through the run's channel
    /// (a terminal prompt, `gleaner 2fa`, or nobody: see [`crate::twofa`]).
    ///
    /// Call it again after the provider refused a code: the attempt number
    /// goes up, and after [`MAX_TWO_FACTOR_ATTEMPTS`] the run fails with
    /// `USER_ACTION_NEEDED.WRONG_TWOFA_CODE`.
    pub async fn two_factor(&mut self, kind: TwoFactorKind, hint: Option<&str>) -> Result<Secret> {
        if self.two_factor_attempts >= MAX_TWO_FACTOR_ATTEMPTS {
            return Err(KonnectorError::new(
                ErrorCode::UserActionNeededWrongTwofaCode,
                format!(
                    "{} refused {} {kind} codes in a row for account {}",
                    self.manifest.slug, self.two_factor_attempts, self.account.label
                ),
            ));
        }
        self.two_factor_attempts += 1;
        let request = TwoFactorRequest {
            account_id: self.account.id.clone(),
            account_label: self.account.label.clone(),
            konnector: self.manifest.slug.clone(),
            kind,
            hint: hint.map(str::to_owned),
            attempt: self.two_factor_attempts,
        };
        tracing::info!(kind = %kind, attempt = request.attempt, "second factor asked");
        let asked_at = tokio::time::Instant::now();
        self.two_factor_waits.set_asking(true);
        let answer = self.two_factor.ask(&request).await;
        self.two_factor_waits.set_asking(false);
        self.two_factor_waits.add(asked_at.elapsed());
        answer
    }

    /// Whether someone may answer a second-factor question in this run.
    pub fn attended(&self) -> bool {
        self.two_factor.attended()
    }

    /// Time spent waiting for second-factor answers (the runner adds it to
    /// the run's time limit).
    pub fn two_factor_waits(&self) -> TwoFactorWaits {
        self.two_factor_waits.clone()
    }

    /// Whether a document with the same key is staged or stored already.
    pub async fn known<D: Doctype>(&self, doc: &D) -> Result<bool> {
        let key = doc.dedup_key();
        if self.doc_index.contains_key(&(D::DOCTYPE, key.clone())) {
            return Ok(true);
        }
        Ok(self
            .store
            .find_id(&self.account.id, D::DOCTYPE, &key)
            .await?
            .is_some())
    }

    /// Validates and stages a document. A document with the same key staged
    /// earlier in the run is replaced.
    pub fn save<D: Doctype>(&mut self, doc: &D) -> Result<()> {
        self.stage(doc, None)
    }

    fn stage<D: Doctype>(&mut self, doc: &D, id: Option<String>) -> Result<()> {
        doc.validate()?;
        let data = serde_json::to_value(doc).map_err(|e| {
            KonnectorError::invalid_data(format!("cannot encode a {} document: {e}", D::DOCTYPE))
        })?;
        let key = doc.dedup_key();
        let staged = StagedDoc::from_value(D::DOCTYPE, key.clone(), id, &data);
        match self.doc_index.get(&(D::DOCTYPE, key.clone())) {
            Some(&i) => self.docs[i] = staged,
            None => {
                self.doc_index.insert((D::DOCTYPE, key), self.docs.len());
                self.docs.push(staged);
            }
        }
        Ok(())
    }

    /// Saves a bill and, when given, its file: Cozy's `saveBills`.
    ///
    /// The file is downloaded only if the account's folder does not already
    /// hold it (same path, still on disk); it is checked (not empty, the
    /// declared type, not truncated) and linked from the bill's `invoice`.
    pub async fn save_bill(&mut self, mut bill: Bill, file: Option<BillFile>) -> Result<()> {
        bill.validate()?;
        if let Some(file) = file {
            let name = crate::store::files::sanitize_name(&file.name);
            let rel_path = format!("{}/{name}", self.account_dir);
            let existing = self
                .store
                .find_id(&self.account.id, FileDoc::DOCTYPE, &rel_path)
                .await?;
            let on_disk = self.files.absolute(&rel_path).is_file();
            let staged_id = self
                .doc_index
                .get(&(FileDoc::DOCTYPE, rel_path.clone()))
                .and_then(|&i| self.docs[i].id.clone());
            let id = match (existing, staged_id) {
                (_, Some(id)) => id,
                (Some(id), None) if on_disk => {
                    self.files_reused += 1;
                    id
                }
                (existing, None) => {
                    let id = existing.unwrap_or_else(crate::ids::new_id);
                    self.download_file(&file, &name, &id).await?;
                    id
                }
            };
            bill.filename = Some(name);
            bill.invoice = Some(format!("io.cozy.files:{id}"));
        }
        self.save(&bill)
    }

    async fn download_file(&mut self, file: &BillFile, name: &str, id: &str) -> Result<()> {
        let source = crate::http::strip_query(&file.url);
        let resp = self.http.get(&file.url).await.map_err(|e| {
            if e.code == ErrorCode::VendorDown {
                let mut failed = KonnectorError::file_download_failed(e.message);
                failed.source = e.source;
                failed
            } else {
                e
            }
        })?;
        if !resp.status.is_success() {
            return Err(KonnectorError::file_download_failed(format!(
                "{source} answered {} for the file {name}",
                resp.status
            )));
        }
        let staged = self.files.stage(
            &self.run_id,
            &self.account_dir,
            name,
            &resp.body,
            file.mime,
            &source,
        )?;
        let doc = FileDoc {
            kind: "file".into(),
            name: name.to_owned(),
            path: staged.rel_path.clone(),
            mime: staged.mime.clone(),
            class: mime_class(&staged.mime).into(),
            size: staged.size,
            sha256: staged.sha256.clone(),
            metadata: file.metadata.clone(),
        };
        self.stage(&doc, Some(id.to_owned()))?;
        self.staged_files.push(staged);
        self.files_downloaded += 1;
        Ok(())
    }

    /// Stages a document given as JSON, for konnectors whose documents are
    /// not Rust types (a Cozy Node konnector's, through Gleaner's stack
    /// API): its doctype is only known at run time, its key and id are the
    /// caller's. `data` must be a JSON object; `_id`, `_rev` and
    /// `cozyMetadata` are dropped (the store keeps the id and rebuilds the
    /// metadata). A document staged earlier under the same key is replaced.
    pub fn save_json(
        &mut self,
        doctype: &str,
        key: String,
        id: Option<String>,
        data: &serde_json::Value,
    ) -> Result<()> {
        let serde_json::Value::Object(map) = data else {
            return Err(KonnectorError::invalid_data(format!(
                "a {doctype} document must be a JSON object"
            )));
        };
        if key.is_empty() {
            return Err(KonnectorError::invalid_data(format!(
                "a {doctype} document needs a non-empty key"
            )));
        }
        let mut map = map.clone();
        for reserved in ["_id", "_rev", "cozyMetadata"] {
            map.remove(reserved);
        }
        let doctype = crate::doctypes::intern(doctype);
        self.stage_raw(StagedDoc::from_value(
            doctype,
            key,
            id,
            &serde_json::Value::Object(map),
        ));
        Ok(())
    }

    /// Deletes the account's stored document with this key at the commit
    /// (nothing happens if none is stored). A document staged in this run
    /// under the key is dropped too.
    pub fn delete_json(&mut self, doctype: &str, key: String) {
        let doctype = crate::doctypes::intern(doctype);
        if let Some(i) = self.doc_index.remove(&(doctype, key.clone())) {
            self.docs.remove(i);
            for slot in self.doc_index.values_mut() {
                if *slot > i {
                    *slot -= 1;
                }
            }
        }
        self.stage_delete(doctype, key);
    }

    /// Stages a file the run received whole (an upload through Gleaner's
    /// stack API): checked like a download (not empty, content matching
    /// `mime`), written to the run's staging folder, moved under
    /// `rel_dir` (inside the account's folder) when the run commits. The
    /// caller stages the file's document.
    pub fn stage_file(
        &mut self,
        rel_dir: &str,
        name: &str,
        bytes: &[u8],
        mime: &str,
        source: &str,
    ) -> Result<StagedFileInfo> {
        let rel_dir = rel_dir.trim_matches('/');
        let inside = rel_dir == self.account_dir
            || rel_dir
                .strip_prefix(self.account_dir.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if !inside || rel_dir.split('/').any(|p| p == ".." || p == ".") {
            return Err(KonnectorError::new(
                ErrorCode::SaveFileFailed,
                format!("`{rel_dir}` is not inside the account's folder"),
            ));
        }
        let staged = self
            .files
            .stage(&self.run_id, rel_dir, name, bytes, mime, source)?;
        let info = StagedFileInfo {
            rel_path: staged.rel_path.clone(),
            sha256: staged.sha256.clone(),
            size: staged.size,
            mime: staged.mime.clone(),
        };
        self.staged_files.push(staged);
        self.files_downloaded += 1;
        Ok(info)
    }

    /// The account's folder in the files tree, relative to its root.
    pub fn account_folder(&self) -> &str {
        &self.account_dir
    }

    /// The file store (to read files already in place).
    pub fn file_store(&self) -> &FileStore {
        &self.files
    }

    /// A read-only view of the account's stored documents, which a task
    /// running beside the konnector may keep (it sees the store, not what
    /// this run staged).
    pub fn stored_documents(&self) -> AccountDocs {
        AccountDocs {
            store: Arc::clone(&self.store),
            account_id: self.account.id.clone(),
        }
    }

    pub(crate) fn push_warning(&mut self, message: String) {
        self.warn(message);
    }

    /// The account's non-secret fields.
    pub(crate) fn fields_map(&self) -> &BTreeMap<String, String> {
        &self.account.fields
    }

    /// The document store (for the framework's own lookups).
    pub(crate) fn store(&self) -> &Arc<dyn DocStore> {
        &self.store
    }

    /// The framework's part of the state, committed with the run.
    pub(crate) fn framework_state_mut(
        &mut self,
    ) -> &mut serde_json::Map<String, serde_json::Value> {
        &mut self.framework_state
    }

    /// The framework's part of the state, as loaded or changed.
    pub(crate) fn framework_state(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.framework_state
    }

    /// The bank methods' bookkeeping for this run.
    pub(crate) fn bank_run(&mut self) -> &mut crate::bank::BankRun {
        &mut self.bank
    }

    /// The staged document with this key: its id and JSON.
    pub(crate) fn staged(&self, doctype: &'static str, key: &str) -> Option<&StagedDoc> {
        self.doc_index
            .get(&(doctype, key.to_owned()))
            .and_then(|&i| self.docs.get(i))
    }

    /// Stages an already validated and serialized document under `key`.
    pub(crate) fn stage_raw(&mut self, staged: StagedDoc) {
        use std::collections::hash_map::Entry;
        match self.doc_index.entry((staged.doctype, staged.key.clone())) {
            Entry::Occupied(e) => {
                let i = *e.get();
                self.docs[i] = staged;
            }
            Entry::Vacant(e) => {
                e.insert(self.docs.len());
                self.docs.push(staged);
            }
        }
    }

    /// Makes room for `n` more staged documents at once (a large batch
    /// would otherwise grow the list and its index many times).
    pub(crate) fn reserve_docs(&mut self, n: usize) {
        self.docs.reserve(n);
        self.doc_index.reserve(n);
    }

    /// Validates and stages `doc` with a chosen id (used if it is new).
    pub(crate) fn stage_with_id<D: Doctype>(&mut self, doc: &D, id: String) -> Result<()> {
        self.stage(doc, Some(id))
    }

    /// Deletes a stored document at the commit.
    pub(crate) fn stage_delete(&mut self, doctype: &'static str, key: String) {
        self.deletes.push((doctype.to_owned(), key));
    }

    pub(crate) fn into_staged(self) -> Staged {
        Staged {
            docs: self.docs,
            deletes: self.deletes,
            files: self.staged_files,
            state: merge_state(self.state, self.framework_state),
            warnings: self.warnings,
            files_downloaded: self.files_downloaded,
            files_reused: self.files_reused,
        }
    }
}

/// The key of the stored state under which the framework keeps its own
/// part (the bank cursors); reserved: a konnector's own state must not use
/// it at its top level.
pub const FRAMEWORK_STATE_KEY: &str = "_gleaner";

/// Under [`FRAMEWORK_STATE_KEY`], the konnector's state when it is not a
/// JSON object (so that it comes back unchanged).
const WRAPPED_STATE_KEY: &str = "konnectorState";

/// Splits the stored state into the konnector's and the framework's.
fn split_state(
    state: serde_json::Value,
) -> (
    serde_json::Value,
    serde_json::Map<String, serde_json::Value>,
) {
    let serde_json::Value::Object(mut obj) = state else {
        return (state, serde_json::Map::new());
    };
    match obj.remove(FRAMEWORK_STATE_KEY) {
        Some(serde_json::Value::Object(mut framework)) => {
            let konnector = match framework.remove(WRAPPED_STATE_KEY) {
                Some(wrapped) => wrapped,
                None => serde_json::Value::Object(obj),
            };
            (konnector, framework)
        }
        Some(other) => {
            // Not ours (a konnector's own key of that name): left alone.
            obj.insert(FRAMEWORK_STATE_KEY.to_owned(), other);
            (serde_json::Value::Object(obj), serde_json::Map::new())
        }
        None => (serde_json::Value::Object(obj), serde_json::Map::new()),
    }
}

/// The state to store: the konnector's, plus the framework's part when it
/// has one (a konnector that uses no framework state stores its state
/// exactly as it set it).
fn merge_state(
    konnector: serde_json::Value,
    mut framework: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    if framework.is_empty() {
        return konnector;
    }
    match konnector {
        serde_json::Value::Object(mut obj) => {
            obj.insert(
                FRAMEWORK_STATE_KEY.to_owned(),
                serde_json::Value::Object(framework),
            );
            serde_json::Value::Object(obj)
        }
        other => {
            framework.insert(WRAPPED_STATE_KEY.to_owned(), other);
            let mut obj = serde_json::Map::new();
            obj.insert(
                FRAMEWORK_STATE_KEY.to_owned(),
                serde_json::Value::Object(framework),
            );
            serde_json::Value::Object(obj)
        }
    }
}

fn mime_class(mime: &str) -> &'static str {
    match mime {
        "application/pdf" => "pdf",
        m if m.starts_with("image/") => "image",
        m if m.starts_with("text/") => "text",
        _ => "files",
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_framework_state_round_trips_beside_any_konnector_state() {
        let mut framework = serde_json::Map::new();
        framework.insert("bank".into(), json!({"cursors": {"A": "2026-01-02"}}));
        for konnector in [json!(null), json!({"cursor": 3}), json!([1, 2]), json!("x")] {
            let stored = merge_state(konnector.clone(), framework.clone());
            let (back, fw) = split_state(stored);
            assert_eq!(back, konnector);
            assert_eq!(fw, framework);
        }
        // Without framework state the konnector's state is stored as is.
        assert_eq!(
            merge_state(json!(null), serde_json::Map::new()),
            json!(null)
        );
        // A konnector's own non-object `_gleaner` is left to it.
        let (back, fw) = split_state(json!({"_gleaner": 1}));
        assert_eq!(back, json!({"_gleaner": 1}));
        assert!(fw.is_empty());
    }
}
