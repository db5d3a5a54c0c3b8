//! The login form and the customer area's home: `GET /account/` (login
//! page, home page, `?switch-user=`, `?logout`) and `POST /account/`.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use gleaner_sandbox_kit::cookies::{self, SetCookie};
use gleaner_sandbox_kit::form;

use super::pages::{
    BAD_REQUEST_HTML, INTERNAL_ERROR_HTML, LINES, LOGIN_BLOCKED_HTML, LOGIN_FAILED_HTML, LOGIN_HTML,
    VERIFICATION_LOCKED_HTML, home_page, html, redirect,
};
use super::state::Shared;
use super::verification::{pending_get, start_verification};
use super::{LOGIN, LOGIN_2FA, MAX_FAILED_LOGINS, SESSION_COOKIE, Scenario, TRUSTED_DEVICE_COOKIE};

/// `GET /account/`: login page, home page, `?switch-user=` or `?logout`.
pub(super) fn account_get(
    shared: &Shared,
    scenario: Scenario,
    query: &str,
    headers: &HeaderMap,
) -> Response {
    let params: HashMap<String, String> = form::parse(query.as_bytes());
    if let Some(page) = pending_get(shared, &params, headers) {
        return page;
    }
    let session = shared.sessions.find(headers);
    if params.contains_key("logout") {
        if let Some(id) = &session {
            shared.sessions.remove(id);
        }
        let mut response = html(StatusCode::OK, LOGIN_HTML);
        if let Some(cookie) = SetCookie::removal(SESSION_COOKIE)
            .path("/")
            .http_only()
            .header_value()
        {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return response;
    }
    let Some(session) = session else {
        return html(StatusCode::OK, LOGIN_HTML);
    };
    let mut current = None;
    let live = shared.sessions.update(&session, |line| {
        if let Some(wanted) = params.get("switch-user")
            && let Some((id, _)) = LINES.iter().find(|(id, _)| id == wanted)
        {
            *line = id;
        }
        current = Some(*line);
    });
    match current {
        Some(line) if live => home_page(scenario, line),
        _ => html(StatusCode::OK, LOGIN_HTML),
    }
}

/// `POST /account/`: the login form.
pub(super) fn account_post(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = form::parse(body);
    let (Some(ident), Some(password)) = (form.get("login-ident"), form.get("login-pwd")) else {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    };
    let ident = ident.trim();
    {
        let mut failures = shared.failed_logins();
        let count = failures.entry(ident.to_owned()).or_insert(0);
        if *count >= MAX_FAILED_LOGINS {
            return html(StatusCode::OK, LOGIN_BLOCKED_HTML);
        }
        if (ident != LOGIN && ident != LOGIN_2FA) || *password != shared.password() {
            *count += 1;
            return html(StatusCode::OK, LOGIN_FAILED_HTML);
        }
        failures.remove(ident);
    }
    if ident == LOGIN_2FA {
        let two_factor = shared.two_factor();
        let now = shared.clock_now();
        if two_factor
            .locked
            .get(ident)
            .is_some_and(|until| now < *until)
        {
            return html(StatusCode::OK, VERIFICATION_LOCKED_HTML);
        }
        let trusted = cookies::values(headers, TRUSTED_DEVICE_COOKIE)
            .any(|device| two_factor.trusted.get(device).is_some_and(|l| l == ident));
        if !trusted {
            drop(two_factor);
            return start_verification(shared, headers, ident);
        }
    }
    // A fresh session id on every login, like `session_regenerate_id()`.
    if let Some(old) = shared.sessions.find(headers) {
        shared.sessions.remove(&old);
    }
    let (_, cookie) = shared.sessions.create(LINES[0].0);
    let Some(cookie) = cookie.header_value() else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML);
    };
    let mut response = redirect("/account/");
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}
