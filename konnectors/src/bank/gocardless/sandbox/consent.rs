//! Institutions, end-user agreements, requisitions, and the link page that
//! plays the bank's consent (approved on GET).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AccountRec, AgreementRec, Inner, RequisitionRec, answer, error, invalid_token, lock, new_id,
};

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found.", "Not found.", None)
}

fn institution_days(s: &Inner, field: &str) -> u32 {
    s.bank.institution[field]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(90)
}

fn institution_id(s: &Inner) -> String {
    s.bank.institution["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub(super) async fn institution(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !s.authorized(&headers) {
        return invalid_token();
    }
    if id != institution_id(&s) {
        return not_found();
    }
    answer(StatusCode::OK, &s.bank.institution, &[])
}

#[derive(Deserialize)]
pub(super) struct AgreementBody {
    institution_id: Option<String>,
    max_historical_days: Option<u32>,
    access_valid_for_days: Option<u32>,
    access_scope: Option<Vec<String>>,
}

fn agreement_json(a: &AgreementRec) -> Value {
    json!({
        "id": a.id,
        "created": a.created.to_rfc3339(),
        "institution_id": a.institution_id,
        "max_historical_days": a.max_historical_days,
        "access_valid_for_days": a.access_valid_for_days,
        "access_scope": ["balances", "details", "transactions"],
        "accepted": a.accepted.map(|t| t.to_rfc3339()),
        "reconfirmation": false,
    })
}

fn field_error(field: &str, summary: &str, detail: &str) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        &json!({field: {"summary": summary, "detail": detail}, "status_code": 400}),
        &[],
    )
}

pub(super) async fn create_agreement(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !s.authorized(&headers) {
        return invalid_token();
    }
    let Ok(b) = serde_json::from_slice::<AgreementBody>(&body) else {
        return field_error("institution_id", "This field is required.", "Send a JSON body");
    };
    let inst = institution_id(&s);
    let Some(institution) = b.institution_id.filter(|i| *i == inst) else {
        return field_error(
            "institution_id",
            "Unknown Institution ID",
            "Get Institution IDs from /institutions/?country={$COUNTRY_CODE}",
        );
    };
    let history = institution_days(&s, "transaction_total_days");
    let days = b.max_historical_days.unwrap_or(90);
    if days == 0 || days > history {
        return answer(
            StatusCode::BAD_REQUEST,
            &json!({"max_historical_days": [{"summary": "Incorrect max_historical_days", "detail": format!("max_historical_days must be > 0 and <= {institution} transaction_total_days ({history})")}], "status_code": 400}),
            &[],
        );
    }
    let max_access = institution_days(&s, "max_access_valid_for_days");
    let access = b.access_valid_for_days.unwrap_or(90);
    if access == 0 || access > max_access {
        return answer(
            StatusCode::BAD_REQUEST,
            &json!({"access_valid_for_days": [{"summary": "Incorrect access_valid_for_days", "detail": format!("access_valid_for_days must be > 0 and <= {max_access}")}], "status_code": 400}),
            &[],
        );
    }
    if let Some(scope) = &b.access_scope
        && (scope.is_empty()
            || scope
                .iter()
                .any(|x| !["balances", "details", "transactions"].contains(&x.as_str())))
    {
        return answer(
            StatusCode::BAD_REQUEST,
            &json!({"access_scope": [{"summary": "Unknown value in access_scope", "detail": "Choose one or several from ['balances', 'details', 'transactions']"}], "status_code": 400}),
            &[],
        );
    }
    let rec = AgreementRec {
        id: new_id(),
        created: s.now(),
        institution_id: institution,
        max_historical_days: days,
        access_valid_for_days: access,
        accepted: None,
    };
    let body = agreement_json(&rec);
    lock(&s.agreements).insert(rec.id.clone(), rec);
    answer(StatusCode::CREATED, &body, &[])
}

pub(super) async fn agreement(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !s.authorized(&headers) {
        return invalid_token();
    }
    match lock(&s.agreements).get(&id) {
        Some(a) => answer(StatusCode::OK, &agreement_json(a), &[]),
        None => not_found(),
    }
}

/// The link the person opens.
pub(super) fn link_of(s: &Inner, r: &RequisitionRec) -> String {
    format!(
        "{}/psd2/start/{}/{}",
        lock(&s.base_url),
        r.id,
        r.institution_id
    )
}

fn requisition_json(s: &Inner, r: &RequisitionRec) -> Value {
    json!({
        "id": r.id,
        "created": r.created.to_rfc3339(),
        "redirect": r.redirect,
        "status": r.status,
        "institution_id": r.institution_id,
        "agreement": r.agreement,
        "reference": r.reference,
        "accounts": r.accounts,
        "user_language": "EN",
        "link": link_of(s, r),
        "ssn": null,
        "account_selection": false,
        "redirect_immediate": false,
    })
}

#[derive(Deserialize)]
pub(super) struct RequisitionBody {
    redirect: Option<String>,
    institution_id: Option<String>,
    agreement: Option<String>,
    reference: Option<String>,
}

pub(super) async fn create_requisition(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !s.authorized(&headers) {
        return invalid_token();
    }
    let Ok(b) = serde_json::from_slice::<RequisitionBody>(&body) else {
        return field_error("redirect", "This field is required.", "Send a JSON body");
    };
    let Some(redirect) = b
        .redirect
        .filter(|r| url::Url::parse(r).is_ok())
    else {
        return field_error("redirect", "Invalid redirect", "Enter a valid URL.");
    };
    let inst = institution_id(&s);
    let Some(institution) = b.institution_id.filter(|i| *i == inst) else {
        return field_error(
            "institution_id",
            "Unknown Institution ID",
            "Get Institution IDs from /institutions/?country={$COUNTRY_CODE}",
        );
    };
    let agreement = match b.agreement {
        Some(a) => {
            let known = lock(&s.agreements)
                .get(&a)
                .is_some_and(|rec| rec.institution_id == institution);
            let used = lock(&s.requisitions).values().any(|r| r.agreement == a);
            if !known || used {
                return answer(
                    StatusCode::BAD_REQUEST,
                    &json!({"agreement": [{"summary": "Invalid EndUserAgreement ID", "detail": format!("{a} is not a valid EndUserAgreement UUID, or it is already associated with a requisition")}], "status_code": 400}),
                    &[],
                );
            }
            a
        }
        None => {
            // Without one, GoCardless makes a default agreement (90 days).
            let rec = AgreementRec {
                id: new_id(),
                created: s.now(),
                institution_id: institution.clone(),
                max_historical_days: 90,
                access_valid_for_days: 90,
                accepted: None,
            };
            let id = rec.id.clone();
            lock(&s.agreements).insert(id.clone(), rec);
            id
        }
    };
    let reference = b.reference.unwrap_or_else(new_id);
    {
        let mut refs = lock(&s.references);
        if refs.contains(&reference) {
            return answer(
                StatusCode::BAD_REQUEST,
                &json!({"reference": {"summary": "Client reference must be unique", "detail": format!("Client reference: {reference} already exists")}, "status_code": 400}),
                &[],
            );
        }
        refs.push(reference.clone());
    }
    let rec = RequisitionRec {
        id: new_id(),
        created: s.now(),
        redirect,
        status: "CR",
        institution_id: institution,
        agreement,
        reference,
        accounts: Vec::new(),
    };
    let body = requisition_json(&s, &rec);
    lock(&s.requisitions).insert(rec.id.clone(), rec);
    answer(StatusCode::CREATED, &body, &[])
}

pub(super) async fn requisition(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !s.authorized(&headers) {
        return invalid_token();
    }
    if uuid::Uuid::parse_str(&id).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid ID",
            &format!("{id} is not a valid UUID."),
            None,
        );
    }
    let rec = lock(&s.requisitions).get(&id).cloned();
    match rec {
        Some(r) => answer(StatusCode::OK, &requisition_json(&s, &r), &[]),
        None => not_found(),
    }
}

/// The bank's consent pages, in one: approves at once (or refuses, in the
/// `refused-link` scenario), gives the requisition its accounts, and says
/// where the browser would go next.
pub(super) async fn link_page(
    State(s): State<Arc<Inner>>,
    Path((id, institution)): Path<(String, String)>,
) -> Response {
    let page = |status: StatusCode, text: &str| {
        gleaner_sandbox_kit::respond::html(
            status,
            format!("<!doctype html><title>Sandbox Finance</title><p>{text}</p>"),
        )
    };
    let now = s.now();
    let mut requisitions = lock(&s.requisitions);
    let Some(r) = requisitions.get_mut(&id).filter(|r| r.institution_id == institution) else {
        return page(StatusCode::NOT_FOUND, "This link is not known.");
    };
    if r.status == "LN" || r.status == "EX" || r.status == "RJ" {
        return page(StatusCode::GONE, "This link was used already.");
    }
    if s.refuse_link.load(Ordering::SeqCst) {
        r.status = "RJ";
        return page(StatusCode::OK, "Sandbox Finance refused the access.");
    }
    let n = s.links_made.fetch_add(1, Ordering::SeqCst);
    let mut accounts = lock(&s.accounts);
    r.accounts = s
        .bank
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            // The first link gets the fixture's ids; GoCardless gives
            // every later link new ones for the same bank accounts.
            let gc_id = if n == 0 { a.id.clone() } else { new_id() };
            accounts.insert(
                gc_id.clone(),
                AccountRec {
                    fixture: i,
                    requisition: r.id.clone(),
                    revoked: false,
                },
            );
            gc_id
        })
        .collect();
    r.status = if s.expire_on_link.load(Ordering::SeqCst) {
        "EX"
    } else {
        "LN"
    };
    if let Some(a) = lock(&s.agreements).get_mut(&r.agreement) {
        a.accepted = Some(now);
    }
    let back = format!("{}?ref={}", r.redirect, r.reference);
    page(
        StatusCode::OK,
        &format!(
            "Sandbox Finance gave access to {} accounts. Your browser would now go to {back}; you can close this page.",
            r.accounts.len()
        ),
    )
}
