//! The sandbox's routes: the token endpoint, the paged bills, the PDFs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use gleaner_sandbox_kit::paging::{PageRequest, page};
use gleaner_sandbox_kit::respond;
use serde_json::{Value, json};

use super::{LOGIN, PASSWORD, Shared, pdf};

/// The bills: id, date, amount.
const BILLS: &[(&str, &str, &str)] = &[
    ("F2026-01", "2026-01-15", "19.99"),
    ("F2026-02", "2026-02-15", "24.50"),
];

/// Items per page unless the client asks (1: two pages, so paging is
/// exercised).
const DEFAULT_PAGE_SIZE: usize = 1;

fn error(status: StatusCode, code: &str) -> Response {
    respond::json(status, &json!({ "error": code }))
}

/// `POST /api/token`: a bearer token for the right credentials.
pub(super) async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(credentials) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if credentials["login"] != LOGIN || credentials["password"] != PASSWORD {
        return error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    shared
        .tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(token.clone());
    respond::json(
        StatusCode::OK,
        &json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 }),
    )
}

/// `GET /api/bills?page=N&size=M`: one page of bills and the next link.
pub(super) async fn bills(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| {
            shared
                .tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(t)
        });
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let request = PageRequest::from_query(uri.query().unwrap_or(""), DEFAULT_PAGE_SIZE, 50);
    let paged = page(BILLS, request, "/api/bills");
    let amount_key = if shared.changed_schema.load(Ordering::SeqCst) {
        "total"
    } else {
        "amount"
    };
    let items: Vec<Value> = paged
        .items
        .iter()
        .map(|(id, date, amount)| {
            let mut item = json!({
                "id": id,
                "date": date,
                "currency": "EUR",
                "pdf_url": format!("/files/{id}.pdf"),
            });
            item[amount_key] = serde_json::from_str(amount).unwrap_or(Value::Null);
            item
        })
        .collect();
    respond::json(
        StatusCode::OK,
        &json!({ "items": items, "total": paged.total, "next": paged.next }),
    )
}

/// `GET /files/<id>.pdf`: a bill's PDF.
pub(super) async fn file(Path(file): Path<String>) -> Response {
    match file
        .strip_suffix(".pdf")
        .filter(|id| BILLS.iter().any(|(b, _, _)| b == id))
    {
        Some(id) => respond::with_type(StatusCode::OK, "application/pdf", pdf::invoice(id)),
        None => error(StatusCode::NOT_FOUND, "not_found"),
    }
}
