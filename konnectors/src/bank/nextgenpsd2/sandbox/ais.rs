//! The account information reads: accounts, balances, transactions.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{NaiveDate, TimeDelta};
use serde_json::{Value, json};

use super::consents::authorise_read;
use super::ledger::{Account, Tx};
use super::{Inner, PAGE_SIZE, Refusal, Scenario, answer, error, lock, psu_ip, request_id};

/// The checks every data call makes: `X-Request-ID`, `PSU-IP-Address`'s
/// form, the consent and the quota. Returns the request id.
fn admit(s: &Inner, headers: &HeaderMap, path: &str) -> Result<String, Refusal> {
    let rid = request_id(s, headers)?;
    let present = psu_ip(headers)?;
    lock(&s.ais_calls).push((path.to_owned(), present));
    authorise_read(s, headers, path, present)?;
    Ok(rid)
}

fn account_json(a: &Account, with_links: bool) -> Value {
    let mut v = json!({
        "resourceId": a.resource_id,
        "iban": a.iban,
        "currency": a.currency,
        "name": a.name,
        "product": a.product,
        "cashAccountType": a.cash_account_type,
        "status": "enabled",
        "ownerName": a.owner_name,
        "bic": "BEXAFRPPXXX",
    });
    if with_links {
        v["_links"] = json!({
            "balances": {"href": format!("/v1/accounts/{}/balances", a.resource_id)},
            "transactions": {"href": format!("/v1/accounts/{}/transactions", a.resource_id)},
        });
    }
    v
}

fn money(currency: &str, amount: rust_decimal::Decimal) -> Value {
    json!({"currency": currency, "amount": format!("{amount:.2}")})
}

fn balances_json(s: &Inner, index: usize, a: &Account) -> Value {
    let today = s.today();
    let yesterday = today - TimeDelta::days(1);
    let booked_today = s.ledger.booked_balance(index, today);
    json!([
        {
            "balanceAmount": money(&a.currency, s.ledger.booked_balance(index, yesterday)),
            "balanceType": "closingBooked",
            "referenceDate": yesterday.format("%Y-%m-%d").to_string(),
        },
        {
            "balanceAmount": money(&a.currency, booked_today + s.ledger.pending_sum(index, today)),
            "balanceType": "expected",
            "lastChangeDateTime": s.clock.now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        }
    ])
}

/// `GET /v1/accounts`.
pub(super) async fn accounts(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let rid = match admit(&s, &headers, "/v1/accounts") {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let with_balance = q.get("withBalance").is_some_and(|v| v == "true");
    let list: Vec<Value> = s
        .ledger
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut v = account_json(a, true);
            if with_balance {
                v["balances"] = balances_json(&s, i, a);
            }
            v
        })
        .collect();
    answer(StatusCode::OK, &rid, &json!({"accounts": list}))
}

fn resource_unknown() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "RESOURCE_UNKNOWN",
        "The addressed account is unknown",
    )
}

/// `GET /v1/accounts/{id}/balances`.
pub(super) async fn balances(
    State(s): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/accounts/{id}/balances");
    let rid = match admit(&s, &headers, &path) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some((index, a)) = s.ledger.account(&id) else {
        return resource_unknown();
    };
    answer(
        StatusCode::OK,
        &rid,
        &json!({"account": {"iban": a.iban}, "balances": balances_json(&s, index, a)}),
    )
}

fn tx_json(t: &Tx, currency: &str, schema_changed: bool) -> Value {
    let mut v = json!({
        "transactionId": t.id,
        "valueDate": t.value_date.format("%Y-%m-%d").to_string(),
        "transactionAmount": money(currency, t.amount),
        "remittanceInformationUnstructured": t.label,
        "bankTransactionCode": t.code,
    });
    if let Some(d) = t.booked_on {
        v["bookingDate"] = json!(d.format("%Y-%m-%d").to_string());
        v["entryReference"] = json!(t.id);
    }
    if let Some(c) = &t.creditor {
        v["creditorName"] = json!(c);
    }
    if let Some(d) = &t.debtor {
        v["debtorName"] = json!(d);
    }
    if let Some(m) = &t.mandate {
        v["mandateId"] = json!(m);
    }
    if schema_changed && let Some(obj) = v.as_object_mut() {
        // A changed interface: the amount moved to another name.
        if let Some(amount) = obj.remove("transactionAmount") {
            obj.insert("amount".into(), amount);
        }
    }
    v
}

fn date_param(q: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, Refusal> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "FORMAT_ERROR",
                    &format!("{name} must be an ISO date"),
                ))
            }),
    }
}

/// `GET /v1/accounts/{id}/transactions`.
pub(super) async fn transactions(
    State(s): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/v1/accounts/{id}/transactions");
    let rid = match admit(&s, &headers, &path) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some((index, a)) = s.ledger.account(&id) else {
        return resource_unknown();
    };
    let (want_booked, want_pending) = match q.get("bookingStatus").map(String::as_str) {
        Some("both" | "all") => (true, true),
        Some("booked") => (true, false),
        Some("pending") => (false, true),
        Some("information") => {
            return error(
                StatusCode::BAD_REQUEST,
                "PARAMETER_NOT_SUPPORTED",
                "bookingStatus=information is not supported",
            );
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "bookingStatus is not one of the spec's values",
            );
        }
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "bookingStatus is required",
            );
        }
    };
    let today = s.today();
    let from = match date_param(&q, "dateFrom") {
        Ok(Some(d)) => d,
        Ok(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "dateFrom is required unless a delta report is asked for",
            );
        }
        Err(resp) => return *resp,
    };
    let to = match date_param(&q, "dateTo") {
        Ok(d) => d.unwrap_or(today),
        Err(resp) => return *resp,
    };
    if from > to {
        return error(
            StatusCode::BAD_REQUEST,
            "PERIOD_INVALID",
            "dateFrom is after dateTo",
        );
    }
    let size = q
        .get("itemsPerPage")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(PAGE_SIZE)
        .min(100);
    let page = q
        .get("pageIndex")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let schema_changed = s.scenario() == Scenario::SchemaChanged;
    let booked: Vec<&Tx> = if want_booked {
        s.ledger
            .txs
            .iter()
            .filter(|t| t.account == index && t.booked_by(today))
            .filter(|t| t.booked_on.is_some_and(|d| from <= d && d <= to))
            .collect()
    } else {
        Vec::new()
    };
    let start = page.saturating_mul(size).min(booked.len());
    let end = start.saturating_add(size).min(booked.len());
    let pending: Vec<Value> = if want_pending && page == 0 {
        s.ledger
            .txs
            .iter()
            .filter(|t| t.account == index && t.pending_on(today) && t.value_date <= to)
            .map(|t| tx_json(t, &a.currency, schema_changed))
            .collect()
    } else {
        Vec::new()
    };
    let mut links = json!({"account": {"href": format!("/v1/accounts/{id}")}});
    if end < booked.len() {
        let mut next = format!(
            "/v1/accounts/{id}/transactions?bookingStatus={}&dateFrom={}&dateTo={}&pageIndex={}",
            q.get("bookingStatus").map_or("both", String::as_str),
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d"),
            page + 1
        );
        if q.contains_key("itemsPerPage") {
            next.push_str(&format!("&itemsPerPage={size}"));
        }
        links["next"] = json!({"href": next});
    }
    if page > 0 {
        links["first"] = json!({"href": format!("/v1/accounts/{id}/transactions?bookingStatus=both&dateFrom={}&dateTo={}", from.format("%Y-%m-%d"), to.format("%Y-%m-%d"))});
    }
    let booked_json: Vec<Value> = booked[start..end]
        .iter()
        .map(|t| tx_json(t, &a.currency, schema_changed))
        .collect();
    let mut report = json!({"booked": booked_json, "_links": links});
    if want_pending {
        report["pending"] = json!(pending);
    }
    answer(
        StatusCode::OK,
        &rid,
        &json!({"account": {"iban": a.iban}, "transactions": report}),
    )
}
