//! The login application: the page, its script and the two steps.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use gleaner_sandbox_kit::respond;
use serde_json::json;

use super::{Flow, MAX_FAILED_PASSWORDS, Scenario, Shared, lock};

const LOGIN_HTML: &str = include_str!("../../../../../fixtures/orange/login.html");
const LOGIN_JS: &str = include_str!("../../../../../fixtures/orange/login.js");

/// FNV-1a over the UTF-16 code units of `nonce:value`, as the page's
/// script computes it.
pub(super) fn proof(nonce: &str, value: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for unit in format!("{nonce}:{value}").encode_utf16() {
        h ^= u32::from(unit);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

fn random_hex(len: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..len.min(32)].to_owned()
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(value) = cookie {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn refuse(status: StatusCode, message: &str) -> Response {
    respond::json(status, &json!({ "message": message }))
}

/// `GET /`: the shell, with a fresh nonce bound to a new flow cookie.
pub(super) fn page(shared: &Shared) -> Response {
    let nonce = random_hex(8);
    let (_, cookie) = shared.flows.create(Flow {
        nonce: nonce.clone(),
        login_token: None,
    });
    let body = LOGIN_HTML.replace("__NONCE__", &nonce);
    with_cookie(
        respond::html(StatusCode::OK, body),
        cookie.path("/").http_only().header_value(),
    )
}

/// `GET /static/login.js`; in [`Scenario::ChangedMarkup`] the form's ids
/// are others.
pub(super) fn script(shared: &Shared) -> Response {
    let js = if shared.scenario() == Scenario::ChangedMarkup {
        LOGIN_JS.replace("login: 'login'", "login: 'identifier'")
    } else {
        LOGIN_JS.to_owned()
    };
    respond::with_type(StatusCode::OK, "application/javascript; charset=UTF-8", js)
}

fn signed(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-login-proof")
        .and_then(|v| v.to_str().ok())
}

/// `POST /api/login`: the identifier step.
pub(super) fn identifier(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some((flow_id, flow)) = shared.flows.current(headers) else {
        return refuse(StatusCode::FORBIDDEN, "Session expirée, rechargez la page.");
    };
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return refuse(StatusCode::BAD_REQUEST, "Requête invalide.");
    };
    let login = request["login"].as_str().unwrap_or("").trim().to_owned();
    if signed(headers) != Some(proof(&flow.nonce, &login).as_str()) {
        return refuse(StatusCode::FORBIDDEN, "Requête non autorisée.");
    }
    if !login.eq_ignore_ascii_case(&shared.fixture.login) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Cette adresse e-mail ou ce numéro de mobile n'est pas associé à un compte Orange.",
        );
    }
    let token = random_hex(16);
    shared
        .flows
        .update(&flow_id, |f| f.login_token = Some(token.clone()));
    respond::json(
        StatusCode::OK,
        &json!({ "step": "password", "loginToken": token }),
    )
}

/// `POST /api/password`: the password step.
pub(super) fn password(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some((flow_id, flow)) = shared.flows.current(headers) else {
        return refuse(StatusCode::FORBIDDEN, "Session expirée, rechargez la page.");
    };
    let Some(token) = flow.login_token.clone() else {
        return refuse(StatusCode::FORBIDDEN, "Identifiez-vous d'abord.");
    };
    if signed(headers) != Some(proof(&flow.nonce, &token).as_str()) {
        return refuse(StatusCode::FORBIDDEN, "Requête non autorisée.");
    }
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return refuse(StatusCode::BAD_REQUEST, "Requête invalide.");
    };
    let given = request["password"].as_str().unwrap_or("");
    let mut failed = lock(&shared.failed);
    if *failed >= MAX_FAILED_PASSWORDS {
        return refuse(
            StatusCode::FORBIDDEN,
            "Votre compte est temporairement bloqué : trop de tentatives. Réessayez dans 15 minutes.",
        );
    }
    if given != lock(&shared.password).as_str() {
        *failed += 1;
        let left = MAX_FAILED_PASSWORDS - *failed;
        return refuse(
            StatusCode::UNAUTHORIZED,
            &format!("Mot de passe incorrect. Il vous reste {left} tentative(s)."),
        );
    }
    *failed = 0;
    drop(failed);
    shared.flows.remove(&flow_id);
    let (_, cookie) = shared.sessions.create(());
    if shared.scenario() == Scenario::RateLimited
        && let Some(faults) = shared.faults.get()
    {
        faults.rate_limit_every(3);
    }
    with_cookie(
        respond::json(StatusCode::OK, &json!({ "step": "done" })),
        cookie.path("/").http_only().header_value(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_proof_matches_the_scripts_fnv1a() {
        // FNV-1a 32 of "a:b" (0x61 0x3a 0x62).
        let mut h: u32 = 0x811c_9dc5;
        for b in [0x61u32, 0x3a, 0x62] {
            h ^= b;
            h = h.wrapping_mul(0x0100_0193);
        }
        assert_eq!(super::proof("a", "b"), format!("{h:08x}"));
        assert_ne!(super::proof("n1", "x"), super::proof("n2", "x"));
    }
}
