//! Alan's JSON API (`https://api.alan.com`): paths, the answers' types and
//! how an answer that is not the expected JSON is read.
//!
//! Paths and field names are those Cozy's Alan konnector uses
//! (github.com/konnectors/alan, `src/index.js`: the plain-HTTP versions up
//! to 2023 and the later clisk one). What the sources do not show is
//! marked *assumed* below and in `fixtures/alan/README.md`.

use std::collections::BTreeMap;

use gleaner_framework::http::Response;
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext, Secret};
use serde::Deserialize;

/// `POST` with `{"email", "password", "refresh_token_type": "web"}`: answers
/// `{"token": <JWT>, ...}`, or 401 for refused credentials.
pub const LOGIN: &str = "/auth/login";

/// The user with what the konnector needs expanded (the beneficiaries and
/// their insurance profiles; the clisk konnector's `expand`).
pub fn user(user_id: u64) -> String {
    format!(
        "/api/users/{user_id}?expand=address,beneficiaries,beneficiaries.insurance_profile.user"
    )
}

/// One page of an insurance profile's care events, newest first.
///
/// The path is Cozy's; the `page` parameter (numbered from 1, with a page
/// size the server chooses, an empty or shorter page being the last) is
/// *assumed*: the sources fetch the list in one call.
pub fn care_events(insurance_profile_id: u64, page: u32) -> String {
    format!("/api/insurance_profiles/{insurance_profile_id}/care_events_public?page={page}")
}

/// The monthly statement (PDF) of the refunds paid in `year`/`month`
/// (`month` two digits, as the clisk konnector writes it).
pub fn statement(user_id: u64, year: i32, month: u32) -> String {
    format!("/api/users/{user_id}/decomptes?year={year}&month={month:02}")
}

/// The login answer. Only the token is read; it is wrapped in a
/// [`Secret`] as soon as it is decoded.
#[derive(Deserialize)]
pub struct LoginAnswer {
    /// A JWT whose payload carries the user's `id`.
    pub token: String,
}

/// The user, with its beneficiaries.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: u64,
    /// The people the contract covers (the user first).
    pub beneficiaries: Vec<Beneficiary>,
}

/// One covered person.
#[derive(Debug, Clone, Deserialize)]
pub struct Beneficiary {
    /// Their insurance profile's id (the care events' key).
    pub insurance_profile_id: u64,
    /// The profile, expanded.
    pub insurance_profile: InsuranceProfile,
}

/// An insurance profile.
#[derive(Debug, Clone, Deserialize)]
pub struct InsuranceProfile {
    /// The person.
    pub user: ProfileUser,
}

/// The person of an insurance profile.
#[derive(Debug, Clone, Deserialize)]
pub struct ProfileUser {
    /// The name as Alan writes it (the bills' `beneficiary`).
    pub normalized_full_name: String,
}

/// One care event (a consultation, a pharmacy purchase...).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CareEvent {
    /// Alan's id (the bills' `vendorRef`).
    pub id: u64,
    /// `refunded` once Alan paid; other values (in progress) are skipped.
    pub status: String,
    /// The day of the care, `YYYY-MM-DD`.
    pub care_date: String,
    /// The day Alan pays (or paid), `YYYY-MM-DD`.
    #[serde(default)]
    pub estimated_payment_date: Option<String>,
    /// The acts of the event.
    pub care_acts: Vec<CareAct>,
}

/// One act of a care event; amounts in cents.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CareAct {
    /// What the act was ("Consultation généraliste").
    pub display_label: String,
    /// What was spent.
    pub spent_amount: i64,
    /// The Social Security part, as Cozy's konnector reads it
    /// (`socialSecurityRefund`).
    #[serde(default)]
    pub ss_base: Option<i64>,
    /// What Alan paid the user; `null` under *tiers payant* (Cozy's test
    /// for `isThirdPartyPayer`).
    #[serde(default)]
    pub reimbursed_to_user: Option<i64>,
    /// What Alan paid the care provider under *tiers payant* (*assumed*:
    /// the sources do not show Alan's part of a tiers-payant act).
    #[serde(default)]
    pub reimbursed_to_professional: Option<i64>,
}

/// The answers of a run, by insurance profile.
pub type EventsByProfile = BTreeMap<u64, Vec<CareEvent>>;

/// Fails unless `resp` is a JSON answer: a maintenance page (HTML saying
/// so) is `MAINTENANCE`, another page `VENDOR_DOWN`; a 401 on an API call
/// means the token died (`VENDOR_DOWN`: it was fresh from this run's login).
pub fn expect_json(resp: &Response, what: &str) -> Result<()> {
    let status = resp.status.as_u16();
    let is_json = resp
        .content_type()
        .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    if resp.status.is_success() && is_json {
        return Ok(());
    }
    let text = resp.text();
    let lower = text.to_lowercase();
    if lower.contains("maintenance") {
        return Err(KonnectorError::new(
            ErrorCode::Maintenance,
            format!("Alan is under maintenance (the {what} answered {status} with its maintenance page)"),
        ));
    }
    if resp.status.is_success() {
        return Err(KonnectorError::vendor_down(format!(
            "the {what} answered {status} with {} instead of JSON",
            resp.content_type().unwrap_or_else(|| "no content type".into())
        )));
    }
    Err(KonnectorError::vendor_down(format!(
        "the {what} answered {status}"
    )))
}

/// `GET path` with the bearer token, expecting JSON.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    ctx: &RunContext,
    token: &Secret,
    path: &str,
    what: &str,
) -> Result<T> {
    let url = ctx.url(path)?;
    let resp = ctx.http().get(&url).bearer(token).send().await?;
    expect_json(&resp, what)?;
    resp.json::<T>()
}
