//! Login sessions kept between runs, as Woob's `StatesMixin` and Cozy's
//! `CookieKonnector` do: a konnector saves its cookie jar and any state it
//! chooses, sealed by the vault, with an expiry; the next run restores them,
//! tests the session with one page, and logs in again only if it is dead.
//!
//! The konnector side is on [`crate::RunContext`]:
//! [`restore_session`](crate::RunContext::restore_session),
//! [`save_session`](crate::RunContext::save_session),
//! [`session_state`](crate::RunContext::session_state) and
//! [`clear_session`](crate::RunContext::clear_session).
//!
//! Decisions:
//! - **When it is written.** `save_session` only records the wish; the
//!   runner exports the jar at the end of the run (so the cookies are the
//!   last ones the provider set) and writes it in its own small transaction
//!   just before the documents' commit, so it does not depend on that
//!   commit — **and it is also written after a failed run**: a login that succeeded is worth
//!   keeping (Woob saves its state on failure too), and not logging in again
//!   spares the provider and the user's lock-out counter. A run that called
//!   `clear_session` deletes the saved session whatever its outcome.
//! - **A record that does not open** (tampered, or sealed for another
//!   account) is **discarded with a warning** and the konnector logs in
//!   again: a session is a cache, the credentials stay authoritative, so
//!   failing the run would only block the user. It is never used as garbage.
//! - **Expiry** is checked on restore against the saved `expires_at`; an
//!   expired session is deleted and not restored.
//! - Sessions are off when the runner has no [`Sessions`] (tests, dry
//!   runs): `restore_session` returns `false`, `save_session` does nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{KonnectorError, Result};
use crate::store::SealedSession;
use crate::store::SessionStore;
use crate::store::sealed::SESSION_AAD_SUFFIX;
use crate::vault::Vault;

/// Where sessions are kept and what seals them; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    vault: Arc<Vault>,
}

/// A session opened from the store.
pub struct RestoredSession {
    /// The cookie jar, as [`crate::HttpClient::export_cookies`] gave it.
    pub cookies: Zeroizing<String>,
    /// The state the konnector saved with it.
    pub state: serde_json::Value,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// What restoring found.
pub enum Restore {
    /// Nothing saved.
    None,
    /// A session that expired (it was deleted).
    Expired,
    /// A record that did not open (it was deleted); the message says why.
    Discarded(String),
    /// A live session.
    Live(RestoredSession),
}

/// The plaintext of a session record.
#[derive(Serialize, Deserialize)]
struct Plain {
    v: u32,
    cookies: String,
    state: serde_json::Value,
}

impl Sessions {
    /// Sessions kept in `store`, sealed by `vault`.
    pub fn new(store: Arc<dyn SessionStore>, vault: Arc<Vault>) -> Self {
        Self { store, vault }
    }

    fn aad(account_id: &str) -> Vec<u8> {
        format!("{account_id}{SESSION_AAD_SUFFIX}").into_bytes()
    }

    /// Loads the account's session if it is live; an expired one or one
    /// that does not open is deleted.
    pub async fn restore(&self, account_id: &str) -> Result<Restore> {
        self.restore_at(account_id, Utc::now()).await
    }

    /// [`Sessions::restore`] with an explicit clock (for tests).
    pub async fn restore_at(&self, account_id: &str, now: DateTime<Utc>) -> Result<Restore> {
        let Some(saved) = self.store.load_session(account_id).await? else {
            return Ok(Restore::None);
        };
        if saved.expires_at <= now {
            self.store.delete_session(account_id).await?;
            return Ok(Restore::Expired);
        }
        let what = format!("the login session of account {account_id}");
        let opened = self
            .vault
            .open_bytes(&Self::aad(account_id), &saved.sealed, &what)
            .and_then(|plain| {
                serde_json::from_slice::<Plain>(&plain)
                    .map_err(|e| KonnectorError::store(format!("{what} is malformed: {e}")))
            });
        match opened {
            Ok(plain) if plain.v == 1 => Ok(Restore::Live(RestoredSession {
                cookies: Zeroizing::new(plain.cookies),
                state: plain.state,
                expires_at: saved.expires_at,
            })),
            Ok(plain) => {
                self.store.delete_session(account_id).await?;
                Ok(Restore::Discarded(format!(
                    "{what} has an unknown version {}",
                    plain.v
                )))
            }
            Err(e) => {
                self.store.delete_session(account_id).await?;
                Ok(Restore::Discarded(e.message))
            }
        }
    }

    /// Seals and saves a session that lives `ttl` from now.
    pub async fn save(
        &self,
        account_id: &str,
        cookies: &str,
        state: &serde_json::Value,
        ttl: Duration,
    ) -> Result<()> {
        let plain = Zeroizing::new(
            serde_json::to_vec(&Plain {
                v: 1,
                cookies: cookies.to_owned(),
                state: state.clone(),
            })
            .map_err(|e| KonnectorError::store(format!("cannot encode the session: {e}")))?,
        );
        let sealed = self.vault.seal_bytes(&Self::aad(account_id), &plain)?;
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let expires_at = Utc::now()
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.store
            .save_session(account_id, &SealedSession { sealed, expires_at })
            .await
    }

    /// Forgets the account's session.
    pub async fn clear(&self, account_id: &str) -> Result<()> {
        self.store.delete_session(account_id).await
    }
}
