//! The customer area: `services/rest` JSON services, document downloads,
//! the monthly consumption API. Every service but `checkAuthenticate`
//! wants the `ivoiream` session that `checkAuthenticate` accepted.

use std::sync::atomic::Ordering;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gleaner_sandbox_kit::respond::{html, json, with_type};
use serde_json::{Value, json};

use super::Scenario;
use gleaner_sandbox_kit::pdf;
use super::state::{Shared, SiteSession};
use crate::energy::edf::routes;

const NOT_FOUND: &str = "<!DOCTYPE html><html><head><title>Page introuvable - EDF</title></head><body><h1>Page introuvable</h1></body></html>";

fn not_logged() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        &json!({"errorCode": "401", "errorMessage": "Utilisateur non authentifié"}),
    )
}

/// Every GET that is not the SSO's.
pub(super) fn get(shared: &Shared, path: &str, query: &str, headers: &HeaderMap) -> Response {
    let session = shared.sessions.current(headers);
    if path == routes::CHECK_AUTHENTICATE {
        if let Some((id, _)) = &session {
            shared.sessions.update(id, |s| s.checked = true);
        }
        // Woob: "we do nothing with this response (which contains false btw)".
        return json(StatusCode::OK, &json!(false));
    }
    let Some((id, state)) = session.filter(|(_, s)| s.checked) else {
        if path == routes::LIST_CONTRACTS {
            return json(
                StatusCode::OK,
                &json!({"errorCode": 1, "errorMessage": "invalid session", "customerAccordContracts": null}),
            );
        }
        return match known(path) {
            true => not_logged(),
            false => html(StatusCode::NOT_FOUND, NOT_FOUND),
        };
    };
    let account = &shared.account;
    let params = gleaner_sandbox_kit::form::parse(query.as_bytes());
    match path {
        routes::LIST_CONTRACTS => json(StatusCode::OK, &account.contract_list()),
        routes::MY_DOCUMENTS => {
            shared.sessions.update(&id, |s| s.documents = true);
            json(StatusCode::OK, &json!({"errorCode": 0}))
        }
        routes::BILLS_DOCUMENTS if !state.documents => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            "<h1>Erreur technique</h1>",
        ),
        routes::BILLS_DOCUMENTS => {
            let mut docs = account.bills_documents();
            if shared.scenario() == Scenario::ChangedSchema {
                rename_bill_lists(&mut docs);
            }
            json(StatusCode::OK, &docs)
        }
        routes::BILL_CONSULT => json(StatusCode::OK, &account.bill_consult()),
        routes::PAYMENTS_DOCUMENTS => json(StatusCode::OK, &account.payments_documents()),
        routes::INIT_PAGE => {
            let csrf = state
                .csrf
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            shared.sessions.update(&id, |s| s.csrf = Some(csrf.clone()));
            json(StatusCode::OK, &json!({"data": csrf}))
        }
        routes::DOCUMENT => document(shared, &state, &params),
        routes::MONTHLY_ELEC => {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
            };
            if header(routes::PERSON_HEADER) != account.customer.bp_number
                || header(routes::SITE_HEADER) != account.contract.pdl
            {
                return json(
                    StatusCode::BAD_REQUEST,
                    &json!({"errorCode": "INVALID_SITE", "errorDescription": "person-ext-id / site-ext-id"}),
                );
            }
            let month = |k: &str| {
                params
                    .get(k)
                    .filter(|m| {
                        chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok()
                    })
                    .cloned()
            };
            match (month("begin-month"), month("end-month")) {
                (Some(b), Some(e)) => json(StatusCode::OK, &account.monthly_elec(&b, &e)),
                _ => json(
                    StatusCode::BAD_REQUEST,
                    &json!({"errorCode": "INVALID_PARAMETER", "errorDescription": "begin-month, end-month"}),
                ),
            }
        }
        _ => html(StatusCode::NOT_FOUND, NOT_FOUND),
    }
}

fn known(path: &str) -> bool {
    [
        routes::LIST_CONTRACTS,
        routes::MY_DOCUMENTS,
        routes::BILLS_DOCUMENTS,
        routes::BILL_CONSULT,
        routes::PAYMENTS_DOCUMENTS,
        routes::INIT_PAGE,
        routes::DOCUMENT,
        routes::MONTHLY_ELEC,
    ]
    .contains(&path)
}

/// The `changed-schema` scenario: EDF renamed `listOfbills`.
fn rename_bill_lists(docs: &mut Value) {
    for bp in docs.as_array_mut().into_iter().flatten() {
        for acc in bp
            .get_mut("listOfBillsByAccDTO")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(map) = acc.as_object_mut()
                && let Some(list) = map.remove("listOfbills")
            {
                map.insert("billsList".into(), list);
            }
        }
    }
}

fn euros(amount: &str) -> String {
    format!("{} €", amount.replace('.', ","))
}

/// `getDocumentGetXByData`: an invoice's or the schedule's PDF.
fn document(
    shared: &Shared,
    state: &SiteSession,
    params: &std::collections::HashMap<String, String>,
) -> Response {
    let p = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if state.csrf.as_deref() != Some(p("csrfToken")) || p("csrfToken").is_empty() {
        return html(StatusCode::FORBIDDEN, "<h1>Accès refusé</h1>");
    }
    let account = &shared.account;
    if p("bn") != account.customer.bp_number_crypt || p("an") != account.contract.num_acc_crypt {
        return html(StatusCode::NOT_FOUND, NOT_FOUND);
    }
    let holder = format!(
        "{} {}",
        account.customer.first_name, account.customer.last_name
    );
    let body = match p("dn") {
        routes::DN_INVOICE => {
            let Some(inv) = account
                .invoices
                .iter()
                .find(|i| i.document_number == p("di") && i.par_number == p("pn"))
            else {
                return html(StatusCode::NOT_FOUND, NOT_FOUND);
            };
            pdf::document(
                "EDF - Facture",
                &[
                    format!("Facture n° {}", inv.document_number),
                    inv.label.clone(),
                    format!("Émise le {}", inv.creation_date.format("%d/%m/%Y")),
                    format!(
                        "Client : {holder}, compte {}",
                        account.contract.account_number
                    ),
                    format!("Montant TTC : {}", euros(&inv.bill_amount)),
                ],
            )
        }
        routes::DN_SCHEDULE
            if p("di") == account.schedule.document_number
                && p("pn") == account.schedule.par_number =>
        {
            let mut lines = vec![
                format!("Échéancier n° {}", account.schedule.document_number),
                format!(
                    "Client : {holder}, compte {}",
                    account.contract.account_number
                ),
            ];
            lines.extend(account.schedule.deadlines.iter().map(|d| {
                format!(
                    "{} : {}",
                    d.encashment_date.format("%d/%m/%Y"),
                    euros(&d.electricity_amount)
                )
            }));
            pdf::document("EDF - Échéancier de paiement", &lines)
        }
        _ => return html(StatusCode::NOT_FOUND, NOT_FOUND),
    };
    shared.pdf_downloads.fetch_add(1, Ordering::SeqCst);
    with_type(StatusCode::OK, "application/pdf", body)
}
