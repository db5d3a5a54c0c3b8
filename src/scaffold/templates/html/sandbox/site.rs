//! The sandbox's routes: the login form, the bills page, the PDFs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use gleaner_sandbox_kit::{form, respond};

use super::{LOGIN, PASSWORD, Shared, pdf};

const LOGIN_HTML: &str = include_str!("../../../../../fixtures/{{slug}}/login.html");
const LOGIN_FAILED_HTML: &str = include_str!("../../../../../fixtures/{{slug}}/login_failed.html");
const BILLS_HTML: &str = include_str!("../../../../../fixtures/{{slug}}/bills.html");

/// The invoices the bills page lists (`data-id`), one PDF each.
const INVOICES: &[&str] = &["F2026-01", "F2026-02"];

fn logged_in(shared: &Shared, headers: &HeaderMap) -> bool {
    shared.sessions.touch(headers);
    shared.sessions.find(headers).is_some()
}

fn to_login() -> Response {
    respond::redirect("/login")
        .unwrap_or_else(|| respond::html(StatusCode::OK, LOGIN_HTML))
}

/// `GET /login`: the form, or the bills when already logged in.
pub(super) async fn login_page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if logged_in(&shared, &headers) {
        return respond::redirect("/bills")
            .unwrap_or_else(|| respond::html(StatusCode::OK, LOGIN_HTML));
    }
    respond::html(StatusCode::OK, LOGIN_HTML)
}

/// `POST /login`: a session and a redirect to the bills, or the form again
/// with its error message.
pub(super) async fn login_post(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let fields = form::parse(&body);
    let ok = fields.get("login").map(String::as_str) == Some(LOGIN)
        && fields.get("password").map(String::as_str) == Some(PASSWORD);
    if !ok {
        return respond::html(StatusCode::OK, LOGIN_FAILED_HTML);
    }
    let (_, cookie) = shared.sessions.create(());
    let mut response = respond::redirect("/bills")
        .unwrap_or_else(|| respond::html(StatusCode::OK, LOGIN_HTML));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Some(value) = cookie.header_value() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /bills`: the invoices (redesigned in the `changed-markup`
/// scenario), or the login form.
pub(super) async fn bills(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !logged_in(&shared, &headers) {
        return to_login();
    }
    if shared.changed_markup.load(Ordering::SeqCst) {
        let redesigned = BILLS_HTML.replace("class=\"invoices\"", "class=\"bills-v2\"");
        return respond::html(StatusCode::OK, redesigned);
    }
    respond::html(StatusCode::OK, BILLS_HTML)
}

/// `GET /bills/<id>.pdf`: the invoice's PDF.
pub(super) async fn bill_pdf(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !logged_in(&shared, &headers) {
        return to_login();
    }
    match file
        .strip_suffix(".pdf")
        .filter(|id| INVOICES.contains(id))
    {
        Some(id) => respond::with_type(StatusCode::OK, "application/pdf", pdf::invoice(id)),
        None => respond::html(StatusCode::NOT_FOUND, "<h1>Not found</h1>"),
    }
}

/// `GET /logout`: ends the session.
pub(super) async fn logout(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.sessions.remove_current(&headers);
    respond::html(StatusCode::OK, LOGIN_HTML)
}
