//! The customer area: the home page, the JSON APIs and the PDFs.

use std::sync::atomic::Ordering;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gleaner_sandbox_kit::{form, respond};
use serde_json::{Value, json};

use super::data::{FixtureBill, FixtureContract};
use super::{Scenario, Shared};
use gleaner_sandbox_kit::pdf;

const HOME_HTML: &str = include_str!("../../../../../fixtures/orange/home.html");

/// Where the older bills of `cid` are listed (`oldBillsHref`).
fn old_bills_href(cid: &str) -> String {
    format!("/ecd_wp/facture/historicBills?cid={cid}")
}

/// `GET /accueil`: the home page, or back to the login.
pub(super) fn home(shared: &Shared, headers: &HeaderMap) -> Response {
    if !shared.logged_in(headers) {
        return respond::redirect("/?service=ec&return_url=%2Faccueil").unwrap_or_else(|| {
            respond::html(StatusCode::UNAUTHORIZED, "<h1>Identifiez-vous</h1>")
        });
    }
    let holder = &shared.fixture.holder;
    let body = HOME_HTML
        .replace("__LOGIN__", &shared.fixture.login)
        .replace("__NAME__", &format!("{} {}", holder.first_name, holder.last_name));
    respond::html(StatusCode::OK, body)
}

fn unauthorized() -> Response {
    respond::json(
        StatusCode::UNAUTHORIZED,
        &json!({"code": "401", "message": "Unauthorized", "description": "no valid session"}),
    )
}

fn not_found() -> Response {
    respond::json(
        StatusCode::NOT_FOUND,
        &json!({"code": "404", "message": "Not Found"}),
    )
}

/// Everything under `/ecd_wp/`.
pub(super) fn api(shared: &Shared, path: &str, query: &str, headers: &HeaderMap) -> Response {
    if !shared.logged_in(headers) {
        return unauthorized();
    }
    let params = form::parse(query.as_bytes());
    let param = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let contract = |cid: &str| shared.fixture.contracts.iter().find(|c| c.cid == cid);
    // PDFs come before the JSON APIs' header check (Cozy asks them with
    // the headers too, but the site serves them without).
    if path == "/ecd_wp/facture/v1.0/pdf" {
        let found = contract(param("cid")).and_then(|c| Some((c, c.bill(param("billId"))?)));
        return pdf_answer(shared, found);
    }
    if path == "/ecd_wp/facture/historicPDF" {
        let found = contract(param("cid")).and_then(|c| Some((c, c.bill(param("tecId"))?)));
        return pdf_answer(shared, found);
    }
    if headers.get("x-orange-caller-id").is_none() {
        return respond::json(
            StatusCode::BAD_REQUEST,
            &json!({"code": "400", "message": "missing header X-Orange-Caller-Id"}),
        );
    }
    if path == "/ecd_wp/portfoliomanager/contracts/users/current" {
        return respond::json(StatusCode::OK, &contracts(shared));
    }
    if let Some(cid) =
        path.strip_prefix("/ecd_wp/facture/v2.0/billsAndPaymentInfos/users/current/contracts/")
    {
        return match contract(cid) {
            Some(c) => respond::json(StatusCode::OK, &recent_bills(shared, c)),
            None => not_found(),
        };
    }
    if path == "/ecd_wp/facture/historicBills" {
        return match contract(param("cid")) {
            Some(c) => respond::json(StatusCode::OK, &old_bills(shared, c)),
            None => not_found(),
        };
    }
    not_found()
}

fn contracts(shared: &Shared) -> Value {
    let holder = &shared.fixture.holder;
    let list: Vec<Value> = shared
        .fixture
        .contracts
        .iter()
        .map(|c| {
            json!({
                "cid": c.cid,
                "offerName": c.offer_name,
                "status": c.status,
                "holder": {"firstName": holder.first_name, "lastName": holder.last_name},
                "telco": {"publicNumber": c.public_number, "marketType": "PAR"},
            })
        })
        .collect();
    json!({ "contracts": list })
}

fn recent_bills(shared: &Shared, c: &FixtureContract) -> Value {
    let (recent, old) = c.split(shared.fixture.recent_bills);
    let list: Vec<Value> = recent
        .iter()
        .map(|b| {
            json!({
                "id": b.id,
                "tecId": b.id,
                "date": b.date,
                "amount": b.amount,
                "hrefPdf": format!("?billId={}&billDate={}&cid={}", b.id, b.date, c.cid),
            })
        })
        .collect();
    let list_key = if shared.scenario() == Scenario::ChangedSchema {
        "bills"
    } else {
        "billList"
    };
    let mut history = json!({ list_key: list });
    if !old.is_empty() {
        history["oldBillsHref"] = json!(old_bills_href(&c.cid));
    }
    json!({ "billsHistory": history })
}

fn old_bills(shared: &Shared, c: &FixtureContract) -> Value {
    let (_, old) = c.split(shared.fixture.recent_bills);
    let list: Vec<Value> = old
        .iter()
        .map(|b| {
            json!({
                "entityName": "FACTURE",
                "partitionKeyName": "ND",
                "partitionKeyValue": c.public_number,
                "tecId": b.id,
                "date": b.date,
                "amount": b.amount,
            })
        })
        .collect();
    json!({ "oldBills": list })
}

fn pdf_answer(shared: &Shared, found: Option<(&FixtureContract, &FixtureBill)>) -> Response {
    let Some((c, b)) = found else {
        return not_found();
    };
    shared.pdf_downloads.fetch_add(1, Ordering::SeqCst);
    let title = format!("{} - facture {}", shared.fixture.vendor, b.id);
    let lines = [
        format!("{} - ligne {}", c.offer_name, c.public_number),
        format!("Date : {}", b.date),
        format!("Montant : {}.{:02} EUR", b.amount / 100, b.amount % 100),
        format!("Preleve le {}", b.debit_date),
    ];
    respond::with_type(StatusCode::OK, "application/pdf", pdf::document(&title, &lines))
}
