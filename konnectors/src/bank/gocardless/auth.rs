//! Authorization: the secret id and key buy a token pair
//! (`POST /api/v2/token/new/`); the access token (a day) goes in
//! `Authorization: Bearer` on every other call, and is renewed with the
//! refresh token (30 days, `POST /api/v2/token/refresh/`) when it expires.
//!
//! What a run learns and the next one needs — the tokens, the bank link
//! (agreement and requisition), the bank's per-account call counts and a
//! cache of account details and balances — lives in [`Saved`], kept as the
//! framework's login session ([`RunContext::save_session`]): sealed by the
//! vault, bound to the account, and **written after failed runs too**, so
//! a requisition created by a run that then waited for the person in vain
//! is reused, and calls a failed run made still count against the bank's
//! daily limit.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use gleaner_framework::http::{Method, Response};
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext, Secret};
use serde::{Deserialize, Serialize};

use super::api::{self, ApiError, Details, Quota, Scope, TokenPair, TokenRefreshed};

/// How long the saved session lives (the longest access a bank grants is
/// 180 days; the requisition's own status says when it ends).
pub const SESSION_TTL: StdDuration = StdDuration::from_secs(200 * 86_400);

/// An access token this close to its expiry is renewed first.
const EXPIRY_MARGIN: Duration = Duration::seconds(60);

/// The version of [`Saved`]'s layout.
const SAVED_VERSION: u32 = 1;

/// Everything kept between runs (sealed; see the module docs).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    /// [`SAVED_VERSION`].
    pub v: u32,
    /// A fingerprint of the secret id the tokens were bought with: other
    /// credentials start from new tokens.
    #[serde(default)]
    pub owner: Option<String>,
    /// The token pair.
    #[serde(default)]
    pub tokens: Option<SavedTokens>,
    /// The bank link.
    #[serde(default)]
    pub link: Option<SavedLink>,
    /// The bank's daily limit, by `"<account id>/<scope>"`.
    #[serde(default)]
    pub quotas: BTreeMap<String, Quota>,
    /// Details and last balance, by GoCardless account id.
    #[serde(default)]
    pub cache: BTreeMap<String, CachedAccount>,
}

/// The token pair, as kept in the sealed session.
#[derive(Clone, Serialize, Deserialize)]
pub struct SavedTokens {
    /// The access token.
    pub access: String,
    /// When it expires.
    pub access_expires_at: DateTime<Utc>,
    /// The refresh token.
    #[serde(default)]
    pub refresh: Option<String>,
    /// When it expires.
    #[serde(default)]
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// The bank link: the agreement and the requisition carrying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLink {
    /// The bank.
    pub institution_id: String,
    /// Its name.
    pub institution_name: String,
    /// The end-user agreement.
    pub agreement_id: String,
    /// The requisition.
    pub requisition_id: String,
    /// The link the person opens at the bank.
    pub link: String,
    /// Days of history the agreement grants.
    pub max_historical_days: u32,
    /// Days the access lasts once accepted.
    pub access_valid_for_days: u32,
    /// When the requisition was created.
    pub created_at: DateTime<Utc>,
    /// When the access ends, once known (the agreement's acceptance plus
    /// its validity).
    #[serde(default)]
    pub access_ends_at: Option<DateTime<Utc>>,
}

/// What is kept of one account between runs, to spare the bank's daily
/// limit: its details (they rarely change) and its last balance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CachedAccount {
    /// The details.
    #[serde(default)]
    pub details: Option<Details>,
    /// When they were fetched.
    #[serde(default)]
    pub details_at: Option<DateTime<Utc>>,
    /// The last balance.
    #[serde(default)]
    pub balance: Option<CachedBalance>,
}

/// A balance as last fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBalance {
    /// The amount, as the API wrote it.
    pub amount: String,
    /// ISO 4217.
    pub currency: String,
    /// The day it is for.
    #[serde(default)]
    pub date: Option<NaiveDate>,
}

/// The run's view of [`Saved`]: the saved record and the access token in a
/// [`Secret`].
pub struct Session {
    /// What is saved at the end of the run.
    pub saved: Saved,
    /// Whether anything changed since the run started.
    pub dirty: bool,
    access: Option<Secret>,
    renewed: bool,
    /// GoCardless' own limit as the last answer gave it: calls left, and
    /// when its window resets.
    general: Option<(u32, DateTime<Utc>)>,
}

/// The longest a run waits for GoCardless' own (per-minute) limit to
/// reset; a longer wait ends the run with `VENDOR_DOWN` and the delay.
pub const MAX_GENERAL_WAIT: Duration = Duration::seconds(60);

/// What to do before a call, given GoCardless' general limit as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Call now.
    Go,
    /// No call left: wait this long for the window to reset, then call.
    Wait(Duration),
    /// No call left for longer than a run waits.
    Stop(Duration),
}

/// [`Pace`] for `general` (calls left, reset time) at `now`.
pub fn pace(general: Option<(u32, DateTime<Utc>)>, now: DateTime<Utc>) -> Pace {
    match general {
        Some((0, reset_at)) if reset_at > now => {
            let wait = reset_at - now;
            if wait > MAX_GENERAL_WAIT {
                Pace::Stop(wait)
            } else {
                Pace::Wait(wait)
            }
        }
        _ => Pace::Go,
    }
}

fn fingerprint(secret_id: &Secret) -> String {
    // Inside the sealed record only: it tells credentials apart, it does
    // not protect them.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    secret_id.expose().hash(&mut h);
    format!("{:016x}", h.finish())
}

impl Session {
    /// Restores the saved session (a record of another layout, or of other
    /// credentials, is dropped: the run starts from new tokens).
    pub async fn restore(ctx: &mut RunContext) -> Result<Self> {
        let owner = fingerprint(ctx.secret("secret_id")?);
        let mut saved = Saved::default();
        if ctx.restore_session().await? {
            match ctx
                .session_state()
                .cloned()
                .map(serde_json::from_value::<Saved>)
            {
                Some(Ok(s)) if s.v == SAVED_VERSION => saved = s,
                _ => ctx.warn("the saved GoCardless session was unreadable; starting afresh"),
            }
        }
        let mut dirty = false;
        if saved.owner.as_deref() != Some(owner.as_str()) {
            if saved.tokens.is_some() {
                tracing::info!("other credentials than the saved tokens': new tokens");
                dirty = true;
            }
            saved.tokens = None;
            saved.owner = Some(owner);
        }
        saved.v = SAVED_VERSION;
        // Registered for redaction from the start.
        let access = saved.tokens.as_ref().map(|t| Secret::new(t.access.clone()));
        if let Some(refresh) = saved.tokens.as_ref().and_then(|t| t.refresh.as_deref()) {
            gleaner_framework::redact::register(refresh);
        }
        Ok(Self {
            saved,
            dirty,
            access,
            renewed: false,
            general: None,
        })
    }

    /// Records the session to be saved at the end of the run (successful
    /// or not), when something changed.
    pub fn persist(&self, ctx: &mut RunContext) {
        if !self.dirty {
            return;
        }
        match serde_json::to_value(&self.saved) {
            Ok(state) => ctx.save_session(SESSION_TTL, state),
            Err(e) => ctx.warn(format!("the GoCardless session could not be saved: {e}")),
        }
    }

    /// The quota last seen for `account`'s `scope`.
    pub fn quota(&self, account: &str, scope: Scope) -> Option<Quota> {
        self.saved.quotas.get(&quota_key(account, scope)).copied()
    }

    /// Records the quota an answer announced.
    pub fn set_quota(&mut self, account: &str, scope: Scope, quota: Quota) {
        self.saved.quotas.insert(quota_key(account, scope), quota);
        self.dirty = true;
    }

    /// Forgets the bank link (expired, refused, revoked): the next run
    /// creates a new one.
    pub fn drop_link(&mut self) {
        if self.saved.link.take().is_some() {
            self.dirty = true;
        }
    }

    /// Drops quotas whose window has reset, and cached accounts the
    /// requisition no longer lists.
    pub fn tidy(&mut self, now: DateTime<Utc>, accounts: &[String]) {
        let before = (self.saved.quotas.len(), self.saved.cache.len());
        self.saved.quotas.retain(|_, q| q.reset_at > now);
        self.saved.cache.retain(|id, _| accounts.contains(id));
        if before != (self.saved.quotas.len(), self.saved.cache.len()) {
            self.dirty = true;
        }
    }
}

fn quota_key(account: &str, scope: Scope) -> String {
    format!("{account}/{scope}")
}

/// An access token valid now: the saved one, else one renewed with the
/// refresh token, else a new pair from the secret id and key.
pub async fn access_token(ctx: &RunContext, s: &mut Session) -> Result<Secret> {
    let now = ctx.now();
    if let (Some(access), Some(t)) = (&s.access, &s.saved.tokens)
        && t.access_expires_at - EXPIRY_MARGIN > now
    {
        return Ok(access.clone());
    }
    let refresh = s.saved.tokens.as_ref().and_then(|t| {
        let live = t.refresh_expires_at.is_none_or(|at| at - EXPIRY_MARGIN > now);
        t.refresh.clone().filter(|_| live)
    });
    if let Some(refresh) = refresh {
        let refresh = Secret::new(refresh);
        if let Some(token) = refresh_access(ctx, s, &refresh).await? {
            return Ok(token);
        }
    }
    new_pair(ctx, s).await
}

/// `POST /api/v2/token/refresh/`; `None` when the refresh token is refused
/// (expired or revoked: a new pair is bought instead).
async fn refresh_access(
    ctx: &RunContext,
    s: &mut Session,
    refresh: &Secret,
) -> Result<Option<Secret>> {
    let url = ctx.url(api::TOKEN_REFRESH)?;
    let resp = ctx
        .http()
        .post(&url)
        .json(&serde_json::json!({ "refresh": refresh.expose() }))
        .send()
        .await?;
    match resp.status.as_u16() {
        200 => {}
        401 => {
            tracing::info!("GoCardless refused the refresh token; buying a new pair");
            return Ok(None);
        }
        _ => return Err(token_error(&resp)),
    }
    let got: TokenRefreshed = resp.json()?;
    let now = ctx.now();
    let access = Secret::new(got.access);
    if let Some(t) = s.saved.tokens.as_mut() {
        t.access = access.expose().to_owned();
        t.access_expires_at = now + Duration::seconds(got.access_expires.max(0));
    }
    s.access = Some(access.clone());
    s.dirty = true;
    tracing::info!("access token refreshed");
    Ok(Some(access))
}

/// `POST /api/v2/token/new/` with the secret id and key.
async fn new_pair(ctx: &RunContext, s: &mut Session) -> Result<Secret> {
    let url = ctx.url(api::TOKEN_NEW)?;
    let resp = ctx
        .http()
        .post(&url)
        .json(&api::TokenNewRequest {
            secret_id: ctx.secret("secret_id")?.expose(),
            secret_key: ctx.secret("secret_key")?.expose(),
        })
        .send()
        .await?;
    if resp.status.as_u16() != 200 {
        return Err(token_error(&resp));
    }
    let pair: TokenPair = resp.json()?;
    let now = ctx.now();
    let access = Secret::new(pair.access);
    let refresh = pair.refresh.map(Secret::new);
    s.saved.tokens = Some(SavedTokens {
        access: access.expose().to_owned(),
        access_expires_at: now + Duration::seconds(pair.access_expires.max(0)),
        refresh: refresh.as_ref().map(|r| r.expose().to_owned()),
        refresh_expires_at: refresh
            .as_ref()
            .map(|_| now + Duration::seconds(pair.refresh_expires.max(0))),
    });
    s.access = Some(access.clone());
    s.dirty = true;
    tracing::info!("new GoCardless token pair");
    Ok(access)
}

/// What a refused token call means.
fn token_error(resp: &Response) -> KonnectorError {
    let err = ApiError::parse(&resp.body);
    let status = resp.status.as_u16();
    match status {
        // "Authentication failed: No active account found with the given
        // credentials" (the spec's 401 for a wrong secret id or key).
        401 => KonnectorError::login_failed(format!(
            "GoCardless refused the secret id and key ({})",
            err.text()
        )),
        // "Your IP isn't whitelisted": the portal restricts the secrets.
        403 => KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!(
                "GoCardless refused this machine's address ({}); allow it in the Bank Account Data portal's IP settings, or lift the restriction",
                err.text()
            ),
        ),
        _ => KonnectorError::vendor_down(format!(
            "GoCardless answered {status} to a token request ({})",
            err.text()
        )),
    }
}

/// Sends an API call with the access token; when the API says the token
/// itself is invalid (not the bank access behind it), renews it once and
/// sends again. The answer is returned whatever its status (429 and 5xx
/// are the HTTP client's: retried, then `VENDOR_DOWN`).
pub async fn send(
    ctx: &RunContext,
    s: &mut Session,
    method: Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<&serde_json::Value>,
) -> Result<Response> {
    let url = ctx.url(path)?;
    loop {
        match pace(s.general, ctx.now()) {
            Pace::Go => {}
            Pace::Wait(wait) => {
                tracing::info!(wait_s = wait.num_seconds(), "GoCardless' rate limit: waiting for its window");
                tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
            }
            Pace::Stop(wait) => {
                return Err(KonnectorError::vendor_down(format!(
                    "GoCardless' own rate limit is reached for {} s; a later run can go on",
                    wait.num_seconds()
                ))
                .with_retry_after(wait.to_std().unwrap_or_default()));
            }
        }
        s.general = None;
        let token = access_token(ctx, s).await?;
        let mut req = ctx
            .http()
            .request(method.clone(), &url)
            .bearer(&token)
            .query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await?;
        let general = api::RateLimits::from_headers(&resp.headers).general;
        if let (Some(left), Some(reset)) = (general.remaining, general.reset_secs) {
            let reset = Duration::seconds(i64::try_from(reset).unwrap_or(i64::MAX).min(86_400));
            s.general = Some((left, ctx.now() + reset));
        }
        if resp.status.as_u16() != 401 || s.renewed || !ApiError::parse(&resp.body).is_invalid_token()
        {
            return Ok(resp);
        }
        tracing::info!("GoCardless refused the access token; renewing it once");
        s.renewed = true;
        s.access = None;
        if let Some(t) = s.saved.tokens.as_mut() {
            t.access_expires_at = ctx.now() - Duration::seconds(1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_general_limit_is_waited_for_or_ends_the_run() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(pace(None, now), Pace::Go);
        assert_eq!(pace(Some((3, now + Duration::seconds(30))), now), Pace::Go);
        assert_eq!(pace(Some((0, now - Duration::seconds(1))), now), Pace::Go);
        assert_eq!(
            pace(Some((0, now + Duration::seconds(20))), now),
            Pace::Wait(Duration::seconds(20))
        );
        assert_eq!(
            pace(Some((0, now + Duration::seconds(3600))), now),
            Pace::Stop(Duration::seconds(3600))
        );
    }
}
