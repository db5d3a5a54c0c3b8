//! The access consent: created once, approved by the person at the bank
//! (the SCA redirect), then reused by every run until it expires.
//!
//! - A run first restores the consent kept in the account's login session
//!   (sealed by the vault, see [`gleaner_framework::session`]) and reuses it
//!   while today is not past its `validUntil`.
//! - Otherwise it creates one (`POST /v1/consents`, valid
//!   [`CONSENT_DAYS`] days at most), asks the person to approve it on the
//!   bank's page through the run's second-factor channel
//!   ([`RunContext::two_factor`] with [`TwoFactorKind::Redirect`], the
//!   `scaRedirect` link as the hint: a terminal shows it, a daemon job
//!   waits in `awaiting_user` with it, [`gleaner_framework::twofa::LoopbackLinks`]
//!   follows a sandbox's loopback link, which approves on a plain GET; for
//!   the decoupled approach, no link, [`TwoFactorKind::App`]: approve in
//!   the bank's app), then polls `GET /v1/consents/{id}/status` until
//!   `valid`.
//! - The approved consent is kept in the session at once (saved at the end
//!   of the run even when a later call fails), then with the validity read
//!   back from `GET /v1/consents/{id}` (the bank may shorten it; when that
//!   call fails, a warning, and the date asked for).
//!
//! Outcomes: the bank rejecting the approval is `LOGIN_FAILED`; a renewal
//! (the kept consent expired, or the bank refused it) that nobody can
//! approve in this run is `USER_ACTION_NEEDED.SCA_REQUIRED`, saying why
//! and what to do; an SCA approach the konnector cannot play (embedded,
//! OAuth) is `CHALLENGE_ASKED`.

use std::time::Duration;

use chrono::{NaiveDate, TimeDelta};
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext, Secret, TwoFactorKind};
use serde::{Deserialize, Serialize};

use super::api::{Api, CallError, ConsentCreated, ConsentRequest, ConsentState, Refusal, link};

/// The longest validity asked for: PSD2's 90 days, today included.
pub const CONSENT_DAYS: i64 = 90;

/// Accesses a day without the person that the consent asks for (the
/// PSD2 default, and the spec's usual maximum).
pub const FREQUENCY_PER_DAY: u32 = 4;

/// Status polls after each answer of the person.
const POLLS: u32 = 3;

/// Between two status polls.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// How long the session outlives the consent, so that a later run can
/// still say that (and when) it expired.
const KEEP_AFTER_EXPIRY: TimeDelta = TimeDelta::days(30);

/// The session state's key for the consent.
const SESSION_KEY: &str = "consent";

/// What the session keeps of a consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    consent_id: String,
    valid_until: NaiveDate,
}

/// A consent the run may read data with.
pub struct Consent {
    /// The `Consent-ID`.
    pub id: Secret,
    /// The last day it is valid.
    pub valid_until: NaiveDate,
    /// Made and approved in this run: the person takes part, so calls
    /// carry `PSU-IP-Address` and do not count against the daily quota.
    pub fresh: bool,
}

impl std::fmt::Debug for Consent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consent")
            .field("valid_until", &self.valid_until)
            .field("fresh", &self.fresh)
            .finish_non_exhaustive()
    }
}

/// Why a new consent is needed.
#[derive(Debug, Clone)]
pub enum Renewal {
    /// None was kept (the account's first run, or sessions are off).
    First,
    /// The kept one's validity ended on this day.
    Expired(NaiveDate),
    /// The bank refused the kept one (its words).
    Refused(Refusal, String),
}

impl Renewal {
    fn why(&self) -> Option<String> {
        match self {
            Self::First => None,
            Self::Expired(day) => Some(format!(
                "the bank's access consent ended on {day} (a consent lasts {CONSENT_DAYS} days at most)"
            )),
            Self::Refused(refusal, said) => Some(format!(
                "the bank says the access consent {} ({said})",
                refusal.describe()
            )),
        }
    }
}

/// The consent kept by an earlier run, if the session holds one.
async fn kept(ctx: &mut RunContext) -> Result<Option<Kept>> {
    if !ctx.restore_session().await? {
        return Ok(None);
    }
    Ok(ctx
        .session_state()
        .and_then(|s| s.get(SESSION_KEY))
        .and_then(|v| serde_json::from_value::<Kept>(v.clone()).ok()))
}

/// A consent to read data with: the kept one while valid, else a new one
/// approved by the person.
pub async fn consent(ctx: &mut RunContext, api: &Api) -> Result<Consent> {
    let today = ctx.today();
    match kept(ctx).await? {
        Some(k) if today <= k.valid_until => {
            tracing::info!(valid_until = %k.valid_until, "reusing the kept access consent");
            Ok(Consent {
                id: Secret::new(k.consent_id),
                valid_until: k.valid_until,
                fresh: false,
            })
        }
        Some(k) => {
            tracing::info!(valid_until = %k.valid_until, "the kept access consent expired");
            new_consent(ctx, api, Renewal::Expired(k.valid_until)).await
        }
        None => new_consent(ctx, api, Renewal::First).await,
    }
}

/// Creates a consent, has the person approve it, reads its validity back
/// and keeps it in the session.
pub async fn new_consent(ctx: &mut RunContext, api: &Api, why: Renewal) -> Result<Consent> {
    let today = ctx.today();
    let requested = today + TimeDelta::days(CONSENT_DAYS - 1);
    let created = api
        .create_consent(&ConsentRequest::bank_offered(requested, FREQUENCY_PER_DAY))
        .await
        .map_err(CallError::into_error)?;
    let id = Secret::new(created.consent_id.clone());
    match ConsentState::parse(&created.consent_status) {
        ConsentState::Valid => {
            tracing::info!("the bank approved the consent without a redirect");
        }
        _ => authorise(ctx, api, &created, &why).await?,
    }
    // Approved: kept at once (a failure later in the run must not cost the
    // person another approval), then with the validity the bank granted.
    keep(ctx, &created.consent_id, requested);
    let valid_until = match api.consent_information(id.expose()).await {
        Ok(info) => requested.min(info.valid_until),
        Err(CallError::Consent(refusal, said)) => {
            return Err(CallError::Consent(refusal, said).into_error());
        }
        Err(CallError::Other(e)) => {
            ctx.warn(format!(
                "the bank did not say how long the new consent lasts ({}); it is kept until {requested}, the date asked for",
                e.message
            ));
            requested
        }
    };
    if valid_until < today {
        ctx.warn(format!(
            "the bank says the new consent was valid until {valid_until}, which is past: the next run asks for another one"
        ));
    }
    keep(ctx, &created.consent_id, valid_until);
    Ok(Consent {
        id,
        valid_until,
        fresh: true,
    })
}

/// Saves the consent in the session (sealed), until a while after it ends.
fn keep(ctx: &mut RunContext, consent_id: &str, valid_until: NaiveDate) {
    let end = (valid_until + TimeDelta::days(1))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
        + KEEP_AFTER_EXPIRY;
    let ttl = (end - ctx.now()).to_std().unwrap_or(Duration::ZERO);
    let state = serde_json::json!({
        SESSION_KEY: Kept {
            consent_id: consent_id.to_owned(),
            valid_until,
        }
    });
    ctx.save_session(ttl, state);
}

/// Forgets the kept consent (the bank refused it).
pub fn forget(ctx: &mut RunContext) {
    ctx.clear_session();
}

/// The SCA: the redirect link to the person, then status polls, until the
/// consent is valid.
async fn authorise(
    ctx: &mut RunContext,
    api: &Api,
    created: &ConsentCreated,
    why: &Renewal,
) -> Result<()> {
    let mut links = created.links.clone();
    if link(&links, "scaRedirect").is_none()
        && let Some(start) = link(&links, "startAuthorisation").map(str::to_owned)
    {
        let started = api
            .start_authorisation(&start)
            .await
            .map_err(CallError::into_error)?;
        links.extend(started.links);
    }
    let redirect = link(&links, "scaRedirect").map(str::to_owned);
    if redirect.is_none() {
        let unsupported = if link(&links, "scaOAuth").is_some() {
            Some("the OAuth2 SCA approach")
        } else if links.keys().any(|k| k.starts_with("startAuthorisationWith")) {
            Some("the embedded SCA approach (credentials typed into the konnector)")
        } else {
            None
        };
        if let Some(approach) = unsupported {
            return Err(KonnectorError::new(
                ErrorCode::ChallengeAsked,
                format!(
                    "the bank asks for {approach}, which this konnector does not support; it supports the redirect and decoupled approaches"
                ),
            ));
        }
        // No link: the decoupled approach, the bank asks the person in its
        // own app.
    }
    if let Some(message) = &created.psu_message {
        tracing::info!(%message, "the bank's message for the consent");
    }
    let kind = if redirect.is_some() {
        TwoFactorKind::Redirect
    } else {
        TwoFactorKind::App
    };
    loop {
        let asked = ctx.two_factor(kind, redirect.as_deref()).await;
        if let Err(e) = asked {
            return Err(match (e.code, why.why()) {
                (ErrorCode::UserActionNeededTwofaExpired, Some(reason)) => KonnectorError::new(
                    ErrorCode::UserActionNeededScaRequired,
                    format!(
                        "{reason}; a new consent needs your approval on the bank's page, and nobody approved it during this run: run this account attended, open the link it shows and approve"
                    ),
                ),
                _ => e,
            });
        }
        for poll in 0..POLLS {
            let status = api
                .consent_status(&created.consent_id)
                .await
                .map_err(CallError::into_error)?;
            match ConsentState::parse(&status) {
                ConsentState::Valid => return Ok(()),
                ConsentState::Rejected => {
                    return Err(KonnectorError::login_failed(
                        "the bank rejected the access consent: the approval on the bank's page failed or was refused",
                    ));
                }
                ConsentState::Expired | ConsentState::Revoked => {
                    return Err(KonnectorError::new(
                        ErrorCode::UserActionNeededScaRequired,
                        format!(
                            "the access consent became `{status}` before it was approved; the next attended run asks for a new one"
                        ),
                    ));
                }
                ConsentState::Waiting | ConsentState::Other => {
                    tracing::info!(%status, poll, "the consent is not approved yet");
                    if poll + 1 < POLLS {
                        tokio::time::sleep(POLL_EVERY).await;
                    }
                }
            }
        }
        // Still not approved: ask again (the context counts the attempts
        // and gives up after three).
    }
}
