//! Each account's OAuth tokens: sealed at rest, refreshed once, never lost.
//!
//! Tokens live in the `oauth_tokens(account_id, sealed, expires_at,
//! updated_at)` table of a [`TokenStore`] (SQLite or PostgreSQL), sealed by the [`Vault`] under
//! the associated data `"{account_id}/oauth"` (so a blob moved to another
//! account, or mistaken for the account's credentials, does not open).
//!
//! [`TokenManager::access_token`] returns the stored access token while more
//! than [`REFRESH_MARGIN`] is left, and otherwise refreshes it:
//!
//! 1. an async mutex per account serializes refreshes inside the process;
//! 2. [`TokenStore::lock_tokens`] takes the store's lock on the account's
//!    tokens (SQLite: a `BEGIN IMMEDIATE` transaction, the file's write
//!    lock; PostgreSQL: a transaction holding an advisory lock keyed on the
//!    account), so a second process waits too, and the row is read again
//!    under it: if
//!    someone else refreshed meanwhile, their token is used and no request
//!    is sent;
//! 3. the refresh request goes out (at most [`super::client::TOKEN_TIMEOUT`]);
//! 4. the new token pair is written and committed in that same transaction,
//!    right after the provider answers and before the access token is handed
//!    to anyone. With single-use refresh tokens, the only window in which a
//!    crash loses the rotated token is that write itself.
//!
//! A refused refresh (`invalid_grant`) is `USER_ACTION_NEEDED.OAUTH_OUTDATED`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use oauth2::{RefreshToken, Scope};

use super::{Clock, OAuthConfig, SystemClock, TokenSet, client};
use crate::error::{ErrorCode, KonnectorError, Result};
use crate::http::Transport;
use crate::manifest::OAuthGrant;
use crate::secret::Secret;
use crate::store::{SealedTokens, TokenStore};
use crate::vault::Vault;

/// An access token with less than this left is refreshed before use.
pub const REFRESH_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Points of a refresh where a test can stop the world (see
/// [`TokenManager::with_refresh_hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshStage {
    /// The provider answered with new tokens; nothing is written yet.
    Answered,
    /// The new tokens are committed; the access token is not handed out yet.
    Saved,
}

/// Called at each [`RefreshStage`]; a test hook may never return, and the
/// test then drops the refreshing task, as a crash would stop it.
pub type RefreshHook =
    Arc<dyn Fn(RefreshStage) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Hands out access tokens for accounts, refreshing them as needed. Share
/// one per process (it holds the per-account locks).
pub struct TokenManager {
    store: Arc<dyn TokenStore>,
    vault: Arc<Vault>,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn Transport>,
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    hook: Option<RefreshHook>,
}

fn aad(account_id: &str) -> String {
    format!("{account_id}{}", crate::store::sealed::OAUTH_AAD_SUFFIX)
}

impl TokenManager {
    /// A manager over `store`'s `oauth_tokens` table, sealing with `vault`.
    pub fn new(store: Arc<dyn TokenStore>, vault: Arc<Vault>) -> Result<Self> {
        Ok(Self {
            store,
            vault,
            clock: Arc::new(SystemClock),
            transport: client::token_transport()?,
            locks: std::sync::Mutex::default(),
            hook: None,
        })
    }

    /// Uses `clock` for expiry decisions (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends token calls through `transport` instead of
    /// [`client::token_transport`] (tests, recording).
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// Calls `hook` at each [`RefreshStage`] (crash tests).
    pub fn with_refresh_hook(mut self, hook: RefreshHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The clock in use.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    fn lock_for(&self, account_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(account_id.to_owned()).or_default())
    }

    /// Stores an account's tokens (after a consent), replacing any.
    pub async fn save(&self, account_id: &str, tokens: &TokenSet) -> Result<()> {
        let lock = self.lock_for(account_id);
        let _guard = lock.lock().await;
        let sealed = self.seal(account_id, tokens)?;
        self.store
            .save_tokens(account_id, &sealed, self.clock.now())
            .await
    }

    /// An account's stored tokens, opened.
    pub async fn load(&self, account_id: &str) -> Result<Option<TokenSet>> {
        match self.store.load_tokens(account_id).await? {
            Some(row) => self.open(account_id, &row).map(Some),
            None => Ok(None),
        }
    }

    /// Forgets an account's tokens.
    pub async fn remove(&self, account_id: &str) -> Result<()> {
        self.store.delete_tokens(account_id).await
    }

    /// A valid access token for the account, refreshed first when less than
    /// [`REFRESH_MARGIN`] is left (or fetched, for `client_credentials`).
    pub async fn access_token(&self, account_id: &str, config: &OAuthConfig) -> Result<Secret> {
        self.token(account_id, config, None, None).await
    }

    /// [`TokenManager::access_token`], with any token call sent through
    /// `via` when given (a run's recording or replaying transport, so that
    /// its own refreshes are in its cassette) instead of the manager's.
    pub async fn access_token_via(
        &self,
        account_id: &str,
        config: &OAuthConfig,
        via: Option<Arc<dyn Transport>>,
    ) -> Result<Secret> {
        self.token(account_id, config, None, via).await
    }

    /// A new access token after the provider refused `rejected` (revoked
    /// early, or a clock skew). If another job already replaced it, that
    /// token is returned without a new refresh.
    pub async fn refresh_rejected(
        &self,
        account_id: &str,
        config: &OAuthConfig,
        rejected: &Secret,
    ) -> Result<Secret> {
        self.token(account_id, config, Some(rejected), None).await
    }

    /// [`TokenManager::refresh_rejected`] with token calls sent through
    /// `via` when given (see [`TokenManager::access_token_via`]).
    pub async fn refresh_rejected_via(
        &self,
        account_id: &str,
        config: &OAuthConfig,
        rejected: &Secret,
        via: Option<Arc<dyn Transport>>,
    ) -> Result<Secret> {
        self.token(account_id, config, Some(rejected), via).await
    }

    fn usable(&self, t: &TokenSet, rejected: Option<&Secret>) -> bool {
        if rejected.is_some_and(|r| r.expose() == t.access_token.expose()) {
            return false;
        }
        t.expires_at
            .is_none_or(|at| at - self.clock.now() > REFRESH_MARGIN)
    }

    async fn token(
        &self,
        account_id: &str,
        config: &OAuthConfig,
        rejected: Option<&Secret>,
        via: Option<Arc<dyn Transport>>,
    ) -> Result<Secret> {
        let http = client::OAuthHttp(via.unwrap_or_else(|| Arc::clone(&self.transport)));
        let lock = self.lock_for(account_id);
        let _guard = lock.lock().await;
        if let Some(t) = self.load(account_id).await?
            && self.usable(&t, rejected)
        {
            return Ok(t.access_token);
        }
        let mut tx = self.store.lock_tokens(account_id).await?;
        let current = match tx.current().await? {
            Some(row) => Some(self.open(account_id, &row)?),
            None => None,
        };
        if let Some(t) = &current
            && self.usable(t, rejected)
        {
            // Another process refreshed while we waited for the lock.
            tracing::debug!("OAuth tokens refreshed by another process meanwhile");
            return Ok(t.access_token.clone());
        }
        let fresh = match config.grant {
            OAuthGrant::AuthorizationCode => {
                let Some(refresh) = current.and_then(|t| t.refresh_token) else {
                    return Err(KonnectorError::new(
                        ErrorCode::UserActionNeededOauthOutdated,
                        format!(
                            "account {account_id} has no OAuth refresh token: the consent must be given again"
                        ),
                    ));
                };
                let mut fresh = self.call_refresh(&http, config, &refresh).await?;
                let rotated = fresh.refresh_token.is_some();
                if !rotated {
                    fresh.refresh_token = Some(refresh);
                }
                tracing::info!(rotated, "OAuth access token refreshed");
                fresh
            }
            OAuthGrant::ClientCredentials => {
                let fresh = self.call_client_credentials(&http, config).await?;
                tracing::info!("OAuth client credentials token obtained");
                fresh
            }
        };
        self.stage(RefreshStage::Answered).await;
        let sealed = self.seal(account_id, &fresh)?;
        tx.write(&sealed, self.clock.now()).await?;
        tx.commit().await?;
        self.stage(RefreshStage::Saved).await;
        Ok(fresh.access_token)
    }

    async fn stage(&self, stage: RefreshStage) {
        if let Some(hook) = &self.hook {
            hook(stage).await;
        }
    }

    async fn call_refresh(
        &self,
        http: &client::OAuthHttp,
        config: &OAuthConfig,
        refresh: &Secret,
    ) -> Result<TokenSet> {
        let oauth = client::token_client(config);
        let token = RefreshToken::new(refresh.expose().to_owned());
        let response = oauth
            .exchange_refresh_token(&token)
            .request_async(http)
            .await
            .map_err(|e| client::token_error(e, config, "refresh token"))?;
        Ok(response.into_token_set(self.clock.now()))
    }

    async fn call_client_credentials(
        &self,
        http: &client::OAuthHttp,
        config: &OAuthConfig,
    ) -> Result<TokenSet> {
        let oauth = client::token_client(config);
        let response = oauth
            .exchange_client_credentials()
            .add_scopes(config.scopes.iter().cloned().map(Scope::new))
            .request_async(http)
            .await
            .map_err(|e| client::token_error(e, config, "client credentials"))?;
        Ok(response.into_token_set(self.clock.now()))
    }

    /// Opens a stored row.
    fn open(&self, account_id: &str, row: &SealedTokens) -> Result<TokenSet> {
        let mut opened = self.vault.open(&aad(account_id), &row.sealed)?;
        let access_token = opened.remove("access_token").ok_or_else(|| {
            KonnectorError::store(format!(
                "the OAuth tokens of account {account_id} have no access token"
            ))
        })?;
        Ok(TokenSet {
            access_token,
            refresh_token: opened.remove("refresh_token"),
            expires_at: row.expires_at,
        })
    }

    /// Seals tokens into a row.
    fn seal(&self, account_id: &str, tokens: &TokenSet) -> Result<SealedTokens> {
        let mut plain = BTreeMap::new();
        plain.insert("access_token".to_owned(), tokens.access_token.clone());
        if let Some(r) = &tokens.refresh_token {
            plain.insert("refresh_token".to_owned(), r.clone());
        }
        Ok(SealedTokens {
            sealed: self.vault.seal(&aad(account_id), &plain)?,
            expires_at: tokens.expires_at,
        })
    }
}
