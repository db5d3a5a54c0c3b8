//! The account endpoints: metadata, details, balances and transactions,
//! each with GoCardless' rate-limit headers; the last three limited by the
//! bank to a few successful calls a day per account.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{Duration, NaiveDate, Timelike};
use serde_json::{Value, json};

use super::data::{FixtureAccount, Tx};
use super::{AccountRec, Inner, answer, error, invalid_token, lock};

/// Why an account cannot be read, or the account.
enum Access {
    Ok(AccountRec),
    Refused(Response),
}

fn access(s: &Inner, headers: &HeaderMap, id: &str, what: &str) -> Access {
    if !s.authorized(headers) {
        return Access::Refused(invalid_token());
    }
    let Some(rec) = lock(&s.accounts).get(id).cloned() else {
        return Access::Refused(error(
            StatusCode::NOT_FOUND,
            &format!("Account ID {id} not found"),
            "Please check whether you specified a valid Account ID",
            None,
        ));
    };
    let status = lock(&s.requisitions)
        .get(&rec.requisition)
        .map(|r| (r.status, r.agreement.clone()));
    match status {
        Some(("LN", _)) if rec.revoked => Access::Refused(error(
            StatusCode::UNAUTHORIZED,
            &format!("Couldn't update account {what}"),
            "Access has expired or it has been revoked. To restore access reconnect the account.",
            Some("AccessExpiredError"),
        )),
        Some(("LN", _)) => Access::Ok(rec),
        Some((_, agreement)) => Access::Refused(error(
            StatusCode::UNAUTHORIZED,
            &format!("End User Agreement (EUA) {agreement} has expired"),
            "EUA was valid for 90 days and it expired. The end user must connect the account once more with new EUA and Requisition",
            None,
        )),
        None => Access::Refused(error(
            StatusCode::FORBIDDEN,
            "No valid End User Agreement",
            "Account exists but there is no valid End User Agreement permitting you to access it",
            None,
        )),
    }
}

fn fixture<'a>(s: &'a Inner, rec: &AccountRec) -> Option<&'a FixtureAccount> {
    s.bank.accounts.get(rec.fixture)
}

/// Counts a successful call against the bank's daily limit, or refuses it.
/// The headers to send either way.
fn bank_limit(
    s: &Inner,
    id: &str,
    scope: &'static str,
) -> Result<Vec<(&'static str, String)>, Box<Response>> {
    let now = s.now();
    let today = now.date_naive();
    let limit = s.daily_limit.load(Ordering::SeqCst);
    let reset = (today + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|midnight| (midnight.and_utc() - now).num_seconds().max(1))
        .unwrap_or(86_400)
        .to_string();
    let mut quota = lock(&s.quota);
    let entry = quota.entry((id.to_owned(), scope)).or_insert((today, 0));
    if entry.0 != today {
        *entry = (today, 0);
    }
    let mut headers = s.general_limit()?;
    headers.push(("http_x_ratelimit_account_success_limit", limit.to_string()));
    headers.push(("http_x_ratelimit_account_success_reset", reset));
    if entry.1 >= limit {
        headers.push(("http_x_ratelimit_account_success_remaining", "0".into()));
        let mut resp = answer(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({
                "summary": format!("Couldn't update account {scope}"),
                "detail": "Daily request limit set by the Institution has been exceeded.",
                "type": "RateLimitError",
                "status_code": 429,
            }),
            &headers,
        );
        resp.headers_mut().remove("retry-after");
        return Err(Box::new(resp));
    }
    entry.1 += 1;
    headers.push((
        "http_x_ratelimit_account_success_remaining",
        (limit - entry.1).to_string(),
    ));
    Ok(headers)
}

pub(super) async fn metadata(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let rec = match access(&s, &headers, &id, "metadata") {
        Access::Ok(rec) => rec,
        Access::Refused(r) => return r,
    };
    let Some(a) = fixture(&s, &rec) else {
        return invalid_token();
    };
    let limits = match s.general_limit() {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let now = s.now().to_rfc3339();
    let institution = s.bank.institution["id"].clone();
    answer(
        StatusCode::OK,
        &json!({
            "id": id,
            "created": now,
            "last_accessed": now,
            "iban": a.iban,
            "bban": a.bban,
            "status": "READY",
            "institution_id": institution,
            "owner_name": a.owner_name,
            "name": a.name,
        }),
        &limits,
    )
}

pub(super) async fn details(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let rec = match access(&s, &headers, &id, "details") {
        Access::Ok(rec) => rec,
        Access::Refused(r) => return r,
    };
    let Some(a) = fixture(&s, &rec) else {
        return invalid_token();
    };
    let limits = match bank_limit(&s, &id, "details") {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let mut account = json!({
        "resourceId": a.resource_id,
        "iban": a.iban,
        "currency": a.currency,
        "ownerName": a.owner_name,
        "name": a.name,
        "product": a.product,
        "cashAccountType": a.cash_account_type,
        "status": "enabled",
        "bic": a.bic,
        "usage": "PRIV",
    });
    if let Some(bban) = &a.bban {
        account["bban"] = json!(bban);
    }
    answer(StatusCode::OK, &json!({ "account": account }), &limits)
}

fn day0_txs(s: &Inner, a: &FixtureAccount) -> (NaiveDate, Vec<Tx>) {
    let today = s.today();
    (today, a.transactions(s.day0, s.bank.history_days, today))
}

fn amount(value: rust_decimal::Decimal, currency: &str) -> Value {
    json!({"amount": format!("{value:.2}"), "currency": currency})
}

pub(super) async fn balances(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let rec = match access(&s, &headers, &id, "balances") {
        Access::Ok(rec) => rec,
        Access::Refused(r) => return r,
    };
    let Some(a) = fixture(&s, &rec) else {
        return invalid_token();
    };
    let limits = match bank_limit(&s, &id, "balances") {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let (today, txs) = day0_txs(&s, a);
    let yesterday = today - Duration::days(1);
    let now = s.now().with_nanosecond(0).unwrap_or_else(|| s.now());
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    answer(
        StatusCode::OK,
        &json!({"balances": [
            {"balanceAmount": amount(a.balance(&txs, yesterday), &a.currency), "balanceType": "closingBooked", "referenceDate": day(yesterday)},
            {"balanceAmount": amount(a.balance(&txs, today), &a.currency), "balanceType": "interimBooked", "referenceDate": day(today)},
            {"balanceAmount": amount(a.expected(&txs, today), &a.currency), "balanceType": "expected", "referenceDate": day(today), "lastChangeDateTime": now.to_rfc3339()},
            {"balanceAmount": amount(a.expected(&txs, today), &a.currency), "balanceType": "interimAvailable", "creditLimitIncluded": false},
        ]}),
        &limits,
    )
}

fn tx_json(t: &Tx, currency: &str) -> Value {
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let mut v = json!({
        "internalTransactionId": t.internal_id,
        "transactionAmount": amount(t.amount, currency),
        "remittanceInformationUnstructured": t.label,
        "valueDate": day(t.value_date),
    });
    if t.booked {
        v["bookingDate"] = json!(day(t.date));
    }
    if let Some(id) = &t.transaction_id {
        v["transactionId"] = json!(id);
    }
    if let Some(code) = &t.code {
        v["bankTransactionCode"] = json!(code);
    }
    if let Some(cp) = &t.counterpart {
        let key = if t.amount.is_sign_negative() {
            "creditorName"
        } else {
            "debtorName"
        };
        v[key] = json!(cp);
    }
    v
}

pub(super) async fn transactions(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let rec = match access(&s, &headers, &id, "transactions") {
        Access::Ok(rec) => rec,
        Access::Refused(r) => return r,
    };
    let Some(a) = fixture(&s, &rec) else {
        return invalid_token();
    };
    let date = |k: &str| -> Result<Option<NaiveDate>, Box<Response>> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| {
                    Box::new(error(
                        StatusCode::BAD_REQUEST,
                        "Invalid date format",
                        &format!("{k} must be an ISO 8601 date (YYYY-MM-DD)"),
                        None,
                    ))
                }),
        }
    };
    let (from, to) = match (date("date_from"), date("date_to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return error(
            StatusCode::BAD_REQUEST,
            "Incorrect date range",
            &format!(
                "Starting date '{f}' is greater than end date '{t}'. When specifying date range, starting date must precede the end date"
            ),
            None,
        );
    }
    let limits = match bank_limit(&s, &id, "transactions") {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let (today, txs) = day0_txs(&s, a);
    // The agreement's history bounds what the bank gives.
    let allowed = lock(&s.requisitions)
        .get(&rec.requisition)
        .and_then(|r| lock(&s.agreements).get(&r.agreement).map(|a| a.max_historical_days))
        .unwrap_or(90);
    let oldest = today - Duration::days(i64::from(allowed) - 1);
    let from = from.unwrap_or(oldest).max(oldest);
    let to = to.unwrap_or(today);
    let inside = |t: &&Tx| t.date >= from && t.date <= to;
    let booked: Vec<Value> = txs
        .iter()
        .filter(|t| t.booked)
        .filter(inside)
        .map(|t| tx_json(t, &a.currency))
        .collect();
    let pending: Vec<Value> = txs
        .iter()
        .filter(|t| !t.booked)
        .filter(inside)
        .map(|t| tx_json(t, &a.currency))
        .collect();
    answer(
        StatusCode::OK,
        &json!({
            "transactions": {"booked": booked, "pending": pending},
            "last_updated": s.now().to_rfc3339(),
        }),
        &limits,
    )
}
