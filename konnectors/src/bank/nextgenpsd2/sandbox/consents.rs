//! The consent endpoints and the bank's SCA page.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeDelta};
use serde_json::{Value, json};

use super::{
    ConsentRec, Inner, PSU_ID, Refusal, SCA_PAGE, ScaMode, Scenario, answer, error, header_value,
    lock, psu_ip, request_id,
};

/// The longest validity the bank grants, today included.
const MAX_DAYS: i64 = 90;

/// Checks the body's required fields; the first problem, as the bank says
/// it.
fn check_body(body: &Value, today: NaiveDate) -> Result<(NaiveDate, u32, bool), String> {
    let obj = body.as_object().ok_or("the body must be a JSON object")?;
    let access = obj.get("access").ok_or("`access` is required")?;
    if !access.is_object() {
        return Err("`access` must be an object".into());
    }
    let recurring = obj
        .get("recurringIndicator")
        .ok_or("`recurringIndicator` is required")?
        .as_bool()
        .ok_or("`recurringIndicator` must be a boolean")?;
    let valid_until = obj
        .get("validUntil")
        .ok_or("`validUntil` is required")?
        .as_str()
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .ok_or("`validUntil` must be an ISO date")?;
    if valid_until < today {
        return Err("`validUntil` is in the past".into());
    }
    let frequency = obj
        .get("frequencyPerDay")
        .ok_or("`frequencyPerDay` is required")?
        .as_u64()
        .filter(|f| *f >= 1)
        .ok_or("`frequencyPerDay` must be an integer of at least 1")?;
    obj.get("combinedServiceIndicator")
        .ok_or("`combinedServiceIndicator` is required")?
        .as_bool()
        .ok_or("`combinedServiceIndicator` must be a boolean")?;
    Ok((valid_until, u32::try_from(frequency).unwrap_or(u32::MAX), recurring))
}

/// `POST /v1/consents`.
pub(super) async fn create(State(s): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let rid = match request_id(&s, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match psu_ip(&headers) {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "PSU-IP-Address is mandatory when a consent is created",
            );
        }
        Err(resp) => return *resp,
    }
    if let Some(psu) = header_value(&headers, "psu-id")
        && psu != PSU_ID
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "PSU_CREDENTIALS_INVALID",
            "The PSU-ID is not known to the ASPSP",
        );
    }
    let redirect_preferred = header_value(&headers, "tpp-redirect-preferred") == Some("true");
    if redirect_preferred && header_value(&headers, "tpp-redirect-uri").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "TPP-Redirect-URI is mandated with TPP-Redirect-Preferred: true",
        );
    }
    let json_type = header_value(&headers, "content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    if !json_type {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "FORMAT_ERROR",
            "The body must be application/json",
        );
    }
    let today = s.today();
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error(StatusCode::BAD_REQUEST, "FORMAT_ERROR", "The body is not JSON"),
    };
    let (asked, frequency, recurring) = match check_body(&parsed, today) {
        Ok(v) => v,
        Err(why) => return error(StatusCode::BAD_REQUEST, "FORMAT_ERROR", &why),
    };
    let valid_until = asked.min(today + TimeDelta::days(MAX_DAYS - 1));
    let id = uuid::Uuid::new_v4().to_string();
    let mode = *lock(&s.sca);
    let status = match mode {
        ScaMode::Redirect => "received",
        ScaMode::Exempt => "valid",
    };
    lock(&s.consents).insert(
        id.clone(),
        ConsentRec {
            status,
            valid_until,
            frequency_per_day: frequency,
            recurring,
            last_action: today,
            unattended: Default::default(),
        },
    );
    let host = header_value(&headers, "host").unwrap_or("127.0.0.1");
    let mut links = json!({
        "self": {"href": format!("/v1/consents/{id}")},
        "status": {"href": format!("/v1/consents/{id}/status")},
    });
    if mode == ScaMode::Redirect {
        links["scaRedirect"] = json!({"href": format!("http://{host}{SCA_PAGE}/{id}")});
    }
    let mut resp = answer(
        StatusCode::CREATED,
        &rid,
        &json!({"consentStatus": status, "consentId": id, "_links": links}),
    );
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/consents/{id}")) {
        headers.insert(header::LOCATION, v);
    }
    if mode == ScaMode::Redirect {
        headers.insert("aspsp-sca-approach", HeaderValue::from_static("REDIRECT"));
    }
    resp
}

/// The status of a consent on `today`: `expired` once past its day.
fn current(c: &ConsentRec, today: NaiveDate) -> &'static str {
    if c.status == "valid" && today > c.valid_until {
        "expired"
    } else {
        c.status
    }
}

fn unknown() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "CONSENT_UNKNOWN",
        "The consent is not known to the ASPSP",
    )
}

/// `GET /v1/consents/{id}/status`.
pub(super) async fn status(
    State(s): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rid = match request_id(&s, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let today = s.today();
    let consents = lock(&s.consents);
    match consents.get(&id) {
        Some(c) => answer(StatusCode::OK, &rid, &json!({"consentStatus": current(c, today)})),
        None => unknown(),
    }
}

/// `GET /v1/consents/{id}`.
pub(super) async fn information(
    State(s): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rid = match request_id(&s, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let today = s.today();
    let consents = lock(&s.consents);
    let Some(c) = consents.get(&id) else {
        return unknown();
    };
    answer(
        StatusCode::OK,
        &rid,
        &json!({
            "access": {"balances": [], "transactions": []},
            "recurringIndicator": c.recurring,
            "validUntil": c.valid_until.format("%Y-%m-%d").to_string(),
            "frequencyPerDay": c.frequency_per_day,
            "lastActionDate": c.last_action.format("%Y-%m-%d").to_string(),
            "consentStatus": current(c, today),
            "_links": {"account": {"href": "/v1/accounts"}},
        }),
    )
}

/// `DELETE /v1/consents/{id}`.
pub(super) async fn delete(
    State(s): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = request_id(&s, &headers) {
        return *resp;
    }
    match lock(&s.consents).get_mut(&id) {
        Some(c) => {
            c.status = "terminatedByTpp";
            StatusCode::NO_CONTENT.into_response()
        }
        None => unknown(),
    }
}

/// `GET /__sandbox/sca/{id}`: the bank's page where the person approves.
pub(super) async fn sca_page(State(s): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let html = |status: StatusCode, text: &str| {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            format!(
                "<!doctype html><html lang=\"fr\"><head><title>Banque Exemple</title></head><body><h1>Banque Exemple</h1><p>{text}</p></body></html>"
            ),
        )
            .into_response()
    };
    lock(&s.sca_visits).push(id.clone());
    let reject = s.scenario() == Scenario::ScaRejected;
    let mut consents = lock(&s.consents);
    let Some(c) = consents.get_mut(&id) else {
        return html(StatusCode::NOT_FOUND, "Ce consentement est inconnu.");
    };
    if c.status != "received" {
        return html(StatusCode::CONFLICT, "Ce consentement n'attend plus de validation.");
    }
    if reject {
        c.status = "rejected";
        return html(StatusCode::OK, "Authentification refusée : le consentement est rejeté.");
    }
    c.status = "valid";
    html(
        StatusCode::OK,
        "Consentement validé : vous pouvez revenir à votre application.",
    )
}

/// The consent a data call may use, or the bank's refusal; counts the
/// call against the daily quota when the person is absent.
pub(super) fn authorise_read(
    s: &Inner,
    headers: &HeaderMap,
    path: &str,
    psu_present: bool,
) -> Result<(), Refusal> {
    let Some(id) = header_value(headers, "consent-id") else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "FORMAT_ERROR",
            "Consent-ID is missing",
        )));
    };
    let today = s.today();
    let scenario = s.scenario();
    let mut consents = lock(&s.consents);
    let Some(c) = consents.get_mut(id) else {
        return Err(Box::new(unknown()));
    };
    match scenario {
        Scenario::ExpiredConsent => c.status = "expired",
        Scenario::RevokedConsent => c.status = "revokedByPsu",
        _ => {}
    }
    match current(c, today) {
        "valid" => {}
        "expired" => {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "CONSENT_EXPIRED",
                "The consent was created by this TPP but has expired and needs to be renewed",
            )));
        }
        "received" => {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "CONSENT_INVALID",
                "The consent is not authorised by the PSU yet",
            )));
        }
        "revokedByPsu" => {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "CONSENT_INVALID",
                "The consent was revoked by the PSU",
            )));
        }
        _ => {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "CONSENT_INVALID",
                "The consent is not valid",
            )));
        }
    }
    c.last_action = today;
    if !psu_present {
        let limit = if scenario == Scenario::AccessExceeded {
            0
        } else {
            c.frequency_per_day
        };
        let used = c.unattended.entry((today, path.to_owned())).or_insert(0);
        if *used >= limit {
            let now = s.clock.now();
            let midnight = (today + TimeDelta::days(1)).and_time(chrono::NaiveTime::MIN).and_utc();
            let wait = (midnight - now).num_seconds().max(1);
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "ACCESS_EXCEEDED",
                "The access frequency of the consent is used up for today",
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Err(Box::new(resp));
        }
        *used += 1;
    }
    Ok(())
}
