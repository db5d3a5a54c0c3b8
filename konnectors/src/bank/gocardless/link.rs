//! The bank link: an end-user agreement (what may be read, how far back,
//! for how long), a requisition carrying it, and the requisition's `link`,
//! which the person opens to give access at their bank. The link goes
//! through the run's second-factor channel as a
//! [`TwoFactorKind::Redirect`] (a terminal prompt, `gleaner 2fa`, or a
//! sandbox's page followed by itself); the konnector then polls the
//! requisition until it is linked (`LN`).
//!
//! A link is made once and reused by every later run until it expires
//! (`EX`, or the bank ends the access): then the run fails with
//! `USER_ACTION_NEEDED.SCA_REQUIRED` (the code NextGenPSD2 gives an expired
//! consent) and the next run started by a person makes a new one. A link
//! refused at the bank (`RJ`) is `LOGIN_FAILED`, as NextGenPSD2's rejected
//! consent. A requisition the person has not finished yet is kept and its link
//! shown again.

use chrono::{DateTime, Duration, Utc};
use gleaner_framework::http::Method;
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext, TwoFactorKind};

use super::api::{
    self, Agreement, AgreementRequest, ApiError, Institution, Requisition, RequisitionRequest,
    RequisitionStatus,
};
use super::auth::{self, SavedLink, Session};

/// Where the bank sends the browser back once access is given. The API
/// requires one; nothing listens there (the konnector polls the
/// requisition), so the page that loads after the bank's is a dead end.
pub const REDIRECT_URL: &str = "http://127.0.0.1/gleaner/gocardless/linked";

/// Waits between the polls of the requisition after the person says they
/// are done (the bank's pages may take a moment to tell GoCardless).
pub const POLL_DELAYS_MS: [u64; 5] = [0, 500, 1_000, 2_000, 4_000];

/// The days of history asked for when the account does not say
/// (`history_days`).
pub const DEFAULT_HISTORY_DAYS: u32 = 365;

/// The longest access asked for, in days (banks allow 90 to 180).
pub const MAX_ACCESS_DAYS: u32 = 180;

/// A requisition ready to read, with the link it belongs to.
#[derive(Debug, Clone)]
pub struct Linked {
    /// The requisition (`LN`).
    pub requisition: Requisition,
    /// What is saved about it.
    pub link: SavedLink,
}

/// `USER_ACTION_NEEDED.SCA_REQUIRED`: the bank access must be given again
/// at the bank (the code NextGenPSD2 gives for an expired consent too).
pub fn reconnect(institution: &str, why: &str) -> KonnectorError {
    KonnectorError::new(
        ErrorCode::UserActionNeededScaRequired,
        format!(
            "{why}. Reconnect the bank ({institution}): the next run started by hand shows a new GoCardless link to open and approve at the bank"
        ),
    )
}

fn api_error(what: &str, resp: &gleaner_framework::http::Response) -> KonnectorError {
    let err = ApiError::parse(&resp.body);
    let status = resp.status.as_u16();
    let said = format!("GoCardless answered {status} to {what} ({})", err.text());
    match status {
        401 if err.is_invalid_token() => KonnectorError::login_failed(format!(
            "{said}: a fresh access token was refused"
        )),
        402 => KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!("{said}: the GoCardless account's plan does not allow it; see the Bank Account Data portal"),
        ),
        403 => KonnectorError::new(
            ErrorCode::UserActionNeeded,
            format!("{said}; check the Bank Account Data portal's settings (allowed IP addresses)"),
        ),
        400 | 404 | 409 | 422 => KonnectorError::new(ErrorCode::UnknownError, said),
        _ => KonnectorError::vendor_down(said),
    }
}

/// The account's `history_days` field, or the default.
pub fn history_days(ctx: &RunContext) -> u32 {
    ctx.field("history_days")
        .ok()
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|d| *d > 0)
        .unwrap_or(DEFAULT_HISTORY_DAYS)
}

/// A linked requisition: the saved one when it is still linked, else (or
/// when none is saved) one made now and approved by the person.
pub async fn linked(ctx: &mut RunContext, s: &mut Session) -> Result<Linked> {
    let institution_id = ctx.field("institution_id")?.trim().to_owned();
    if s
        .saved
        .link
        .as_ref()
        .is_some_and(|l| l.institution_id != institution_id)
    {
        tracing::info!("the account's bank changed: a new link");
        s.drop_link();
    }
    let mut asked = false;
    let saved = match s.saved.link.clone() {
        Some(link) => match requisition(ctx, s, &link).await? {
            Some(r) => Some((link, r)),
            None => {
                // GoCardless no longer knows it (deleted in the portal, or
                // another sandbox): as if none was saved.
                tracing::info!("the saved requisition is gone: a new link");
                s.drop_link();
                None
            }
        },
        None => None,
    };
    let (link, mut requisition) = match saved {
        Some(pair) => pair,
        None => {
            let link = create(ctx, s, &institution_id).await?;
            s.saved.link = Some(link.clone());
            s.dirty = true;
            // Saved before the person is asked: a run that waits in vain
            // leaves the link for the next one.
            s.persist(ctx);
            let Some(r) = requisition(ctx, s, &link).await? else {
                return Err(KonnectorError::vendor_down(
                    "GoCardless does not find the requisition it has just created",
                ));
            };
            (link, r)
        }
    };
    loop {
        match status_of(&requisition)? {
            RequisitionStatus::Linked => break,
            RequisitionStatus::InProgress if !asked => {
                asked = true;
                let target = requisition.link.clone().unwrap_or_else(|| link.link.clone());
                ctx.two_factor(TwoFactorKind::Redirect, Some(&target))
                    .await?;
                requisition = poll(ctx, s, &link).await?;
            }
            RequisitionStatus::InProgress => {
                return Err(KonnectorError::new(
                    ErrorCode::UserActionNeededScaRequired,
                    format!(
                        "the access to {} was not given at the bank yet (GoCardless says {}). Open the link again and finish the bank's steps: {}",
                        link.institution_name, requisition.status, link.link
                    ),
                ));
            }
            RequisitionStatus::Expired => {
                s.drop_link();
                s.persist(ctx);
                return Err(reconnect(
                    &link.institution_name,
                    "the access to the bank through GoCardless expired (requisition status EX)",
                ));
            }
            RequisitionStatus::Rejected => {
                s.drop_link();
                s.persist(ctx);
                // As NextGenPSD2 says a rejected consent: the approval at
                // the bank failed or was refused.
                return Err(KonnectorError::login_failed(format!(
                    "the bank or the person refused the access to {} (requisition status RJ): the approval on the bank's page failed or was refused; the next attended run shows a new link",
                    link.institution_name
                )));
            }
            RequisitionStatus::Failed => {
                s.drop_link();
                s.persist(ctx);
                return Err(reconnect(
                    &link.institution_name,
                    &format!(
                        "GoCardless suspended the bank link after errors (requisition status {})",
                        requisition.status
                    ),
                ));
            }
        }
    }
    let mut link = link;
    if link.access_ends_at.is_none() {
        // Once linked, the agreement says when it was accepted.
        if let Some(ends) = access_end(ctx, s, &link).await? {
            link.access_ends_at = Some(ends);
            s.saved.link = Some(link.clone());
            s.dirty = true;
        }
    }
    if let Some(ends) = link.access_ends_at {
        let left = ends - ctx.now();
        if left < Duration::days(7) {
            ctx.warn(format!(
                "the access to {} through GoCardless ends on {}; reconnect the bank before then (a run started by hand shows a new link once it has ended)",
                link.institution_name,
                ends.format("%Y-%m-%d")
            ));
        }
    }
    Ok(Linked { requisition, link })
}

fn status_of(r: &Requisition) -> Result<RequisitionStatus> {
    RequisitionStatus::parse(&r.status).ok_or_else(|| {
        KonnectorError::new(
            ErrorCode::SchemaChanged,
            format!(
                "GoCardless gave the requisition a status outside the spec's StatusEnum at `status`: `{}`",
                r.status
            ),
        )
        .with_locator(gleaner_framework::Locator::JsonPath {
            path: "status".into(),
            url: api::REQUISITIONS.into(),
        })
    })
}

/// `GET /api/v2/requisitions/{id}/`; `None` on a 404.
async fn requisition(
    ctx: &RunContext,
    s: &mut Session,
    link: &SavedLink,
) -> Result<Option<Requisition>> {
    let path = api::item(api::REQUISITIONS, &link.requisition_id);
    let resp = auth::send(ctx, s, Method::GET, &path, &[], None).await?;
    match resp.status.as_u16() {
        200 => resp.json().map(Some),
        404 => Ok(None),
        _ => Err(api_error("the requisition's status", &resp)),
    }
}

/// Polls the requisition until it leaves the in-progress statuses or the
/// delays run out; returns the last answer.
async fn poll(ctx: &RunContext, s: &mut Session, link: &SavedLink) -> Result<Requisition> {
    let mut last = None;
    for delay in POLL_DELAYS_MS {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        let Some(r) = requisition(ctx, s, link).await? else {
            return Err(reconnect(
                &link.institution_name,
                "GoCardless no longer knows the bank link",
            ));
        };
        if status_of(&r)? != RequisitionStatus::InProgress {
            return Ok(r);
        }
        last = Some(r);
    }
    last.ok_or_else(|| KonnectorError::new(ErrorCode::UnknownError, "no requisition polled"))
}

/// Makes a new link: checks the bank, then an agreement and a requisition.
async fn create(ctx: &RunContext, s: &mut Session, institution_id: &str) -> Result<SavedLink> {
    let institution = institution(ctx, s, institution_id).await?;
    let max_historical_days = history_days(ctx)
        .min(institution.history_days())
        .clamp(1, 730);
    let access_valid_for_days = institution.max_access_days().clamp(1, MAX_ACCESS_DAYS);
    let body = serde_json::to_value(AgreementRequest {
        institution_id,
        max_historical_days,
        access_valid_for_days,
        access_scope: ["balances", "details", "transactions"],
    })
    .map_err(|e| KonnectorError::new(ErrorCode::UnknownError, e.to_string()))?;
    let resp = auth::send(ctx, s, Method::POST, api::AGREEMENTS, &[], Some(&body)).await?;
    if !resp.status.is_success() {
        return Err(api_error("the end-user agreement", &resp));
    }
    let agreement: Agreement = resp.json()?;
    let reference = format!("gleaner-{}-{}", ctx.account_id(), ctx.run_id());
    let body = serde_json::to_value(RequisitionRequest {
        redirect: REDIRECT_URL,
        institution_id,
        agreement: &agreement.id,
        reference: &reference,
    })
    .map_err(|e| KonnectorError::new(ErrorCode::UnknownError, e.to_string()))?;
    let resp = auth::send(ctx, s, Method::POST, api::REQUISITIONS, &[], Some(&body)).await?;
    if !resp.status.is_success() {
        return Err(api_error("the requisition", &resp));
    }
    let requisition: Requisition = resp.json()?;
    let link = requisition.link.clone().ok_or_else(|| {
        KonnectorError::new(
            ErrorCode::SchemaChanged,
            "GoCardless created a requisition without a `link` to open",
        )
    })?;
    tracing::info!(requisition = %requisition.id, "new bank link");
    Ok(SavedLink {
        institution_id: institution.id.clone(),
        institution_name: institution.name.clone(),
        agreement_id: agreement.id,
        requisition_id: requisition.id,
        link,
        max_historical_days: agreement.max_historical_days,
        access_valid_for_days: agreement.access_valid_for_days,
        created_at: ctx.now(),
        access_ends_at: None,
    })
}

/// `GET /api/v2/institutions/{id}/`: an unknown id is a wrong field value.
async fn institution(ctx: &RunContext, s: &mut Session, id: &str) -> Result<Institution> {
    let resp = auth::send(ctx, s, Method::GET, &api::item(api::INSTITUTIONS, id), &[], None).await?;
    match resp.status.as_u16() {
        200 => resp.json(),
        404 | 400 => Err(KonnectorError::login_failed(format!(
            "GoCardless knows no institution `{id}` ({}); set the account's institution_id to one GoCardless lists for the bank's country",
            ApiError::parse(&resp.body).text()
        ))),
        _ => Err(api_error("the institution", &resp)),
    }
}

/// When the agreement's access ends (accepted + validity), if accepted.
async fn access_end(
    ctx: &RunContext,
    s: &mut Session,
    link: &SavedLink,
) -> Result<Option<DateTime<Utc>>> {
    let path = api::item(api::AGREEMENTS, &link.agreement_id);
    let resp = auth::send(ctx, s, Method::GET, &path, &[], None).await?;
    if resp.status.as_u16() != 200 {
        // Informative only: the requisition's status is what counts.
        tracing::info!(status = resp.status.as_u16(), "agreement not read");
        return Ok(None);
    }
    let agreement: Agreement = resp.json()?;
    Ok(agreement
        .accepted
        .map(|at| at + Duration::days(i64::from(agreement.access_valid_for_days))))
}
