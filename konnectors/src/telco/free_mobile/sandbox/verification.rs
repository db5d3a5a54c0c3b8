//! New-device verification: the code "emailed" to the outbox, the
//! verification page, `POST /account/verification`, the trusted-device
//! cookie, and the loopback-only outbox endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use gleaner_sandbox_kit::cookies::{self, SetCookie};
use gleaner_sandbox_kit::form;

use super::pages::{
    BAD_REQUEST_HTML, INTERNAL_ERROR_HTML, LINES, LOGIN_CODE_EXPIRED_HTML, LOGIN_HTML,
    NOT_FOUND_HTML, VERIFICATION_HTML, VERIFICATION_LOCKED_HTML, VERIFICATION_WRONG_HTML, html,
    redirect, verification_page,
};
use super::state::{Pending, SentEmail, Shared};
use super::{
    CODE_VALIDITY, EMAIL_TO, LOCKOUT, MAX_CODE_ATTEMPTS, OUTBOX_PATH, SESSION_COOKIE,
    TRUSTED_DEVICE_COOKIE, TRUSTED_DEVICE_MAX_AGE,
};

/// A correct password from a device that is not trusted: a pending
/// session, a code in the outbox, and the verification page.
pub(super) fn start_verification(shared: &Shared, headers: &HeaderMap, ident: &str) -> Response {
    let session = uuid::Uuid::new_v4().simple().to_string();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let code = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
    let Some(cookie) = SetCookie::new(SESSION_COOKIE, session.clone())
        .path("/")
        .http_only()
        .header_value()
    else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML);
    };
    if let Some(old) = shared.sessions.find(headers) {
        shared.sessions.remove(&old);
    }
    let sent_at = shared.clock_now();
    let mut two_factor = shared.two_factor();
    let stale: Vec<String> = cookies::values(headers, SESSION_COOKIE)
        .map(str::to_owned)
        .collect();
    for old in stale {
        two_factor.pending.remove(&old);
    }
    two_factor.outbox.push(SentEmail {
        to: EMAIL_TO.to_owned(),
        subject: "Free Mobile : votre code de vérification".to_owned(),
        body: format!(
            "Bonjour,\n\nVotre code de vérification pour accéder à votre Espace Abonné est : {code}\nIl est valable 10 minutes.\n\nSi vous n'êtes pas à l'origine de cette demande, changez votre mot de passe.\n"
        ),
        code: code.clone(),
    });
    let mut response = verification_page(VERIFICATION_HTML, &token, 0);
    two_factor.pending.insert(
        session,
        Pending {
            login: ident.to_owned(),
            code,
            token,
            sent_at,
            attempts: 0,
        },
    );
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// `GET /account/` for a session waiting for its code: the verification
/// page again, or `?logout` to give up. `None` when the session is not
/// pending.
pub(super) fn pending_get(
    shared: &Shared,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<Response> {
    let mut two_factor = shared.two_factor();
    let session = cookies::values(headers, SESSION_COOKIE)
        .find(|value| two_factor.pending.contains_key(*value))?
        .to_owned();
    if params.contains_key("logout") {
        two_factor.pending.remove(&session);
        return Some(html(StatusCode::OK, LOGIN_HTML));
    }
    let pending = two_factor.pending.get(&session)?;
    Some(verification_page(VERIFICATION_HTML, &pending.token, 0))
}

/// `POST /account/verification`: checks the code of a pending session.
pub(super) fn verification_post(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = form::parse(body);
    let (Some(code), Some(token)) = (form.get("otp"), form.get("otp-token")) else {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    };
    let now = shared.clock_now();
    let mut two_factor = shared.two_factor();
    let Some(session) = cookies::values(headers, SESSION_COOKIE)
        .find(|value| two_factor.pending.contains_key(*value))
        .map(str::to_owned)
    else {
        // No pending verification (never logged in, or given up): the form.
        return html(StatusCode::OK, LOGIN_HTML);
    };
    let Some(pending) = two_factor.pending.get_mut(&session) else {
        return html(StatusCode::OK, LOGIN_HTML);
    };
    if *token != pending.token {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    }
    if now.saturating_sub(pending.sent_at) > CODE_VALIDITY {
        two_factor.pending.remove(&session);
        return html(StatusCode::OK, LOGIN_CODE_EXPIRED_HTML);
    }
    if code.trim() != pending.code {
        pending.attempts += 1;
        if pending.attempts >= MAX_CODE_ATTEMPTS {
            let login = pending.login.clone();
            two_factor.pending.remove(&session);
            two_factor.locked.insert(login, now + LOCKOUT);
            return html(StatusCode::OK, VERIFICATION_LOCKED_HTML);
        }
        return verification_page(
            VERIFICATION_WRONG_HTML,
            &pending.token,
            MAX_CODE_ATTEMPTS - pending.attempts,
        );
    }
    let login = pending.login.clone();
    two_factor.pending.remove(&session);
    let device = (form.get("otp-trust").map(String::as_str) == Some("1")).then(|| {
        let device = uuid::Uuid::new_v4().simple().to_string();
        two_factor.trusted.insert(device.clone(), login);
        device
    });
    drop(two_factor);
    // Logged in: a fresh session id, like after a plain login.
    let (_, session_cookie) = shared.sessions.create(LINES[0].0);
    let mut cookies = vec![session_cookie];
    if let Some(device) = device {
        cookies.push(
            SetCookie::new(TRUSTED_DEVICE_COOKIE, device)
                .max_age(TRUSTED_DEVICE_MAX_AGE)
                .path("/account/")
                .http_only(),
        );
    }
    let mut response = redirect("/account/");
    for cookie in cookies {
        let Some(cookie) = cookie.header_value() else {
            return html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML);
        };
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `/__sandbox/...`: the sandbox's debug routes, for loopback clients only.
pub(super) fn debug_route(
    shared: &Shared,
    peer: SocketAddr,
    method: &Method,
    path: &str,
) -> Response {
    if !peer.ip().is_loopback() {
        return html(StatusCode::NOT_FOUND, NOT_FOUND_HTML);
    }
    match path {
        OUTBOX_PATH if *method == Method::GET => {
            let outbox = shared.two_factor().outbox.clone();
            match serde_json::to_vec(&outbox) {
                Ok(json) => {
                    let mut response = Response::new(Body::from(json));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                }
                Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML),
            }
        }
        _ => html(StatusCode::NOT_FOUND, NOT_FOUND_HTML),
    }
}
