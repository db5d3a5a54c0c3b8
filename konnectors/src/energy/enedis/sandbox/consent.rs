//! `GET /dataconnect/v1/oauth2/authorize`: the consent page, approved at
//! once (or refused, see [`super::Sandbox::set_deny_consent`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{CLIENT_ID, CODE_LIFETIME, CodeGrant, Inner, USAGE_POINT_ID, error, lock, new_token};

fn is_loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http" && u.host_str() == Some("127.0.0.1") && u.port().is_some()
    })
}

pub(super) async fn authorize(
    State(s): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let bad = |d: &str| error(StatusCode::BAD_REQUEST, "Invalid_request", d);
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad("Response type parameter is required");
    }
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Unknown client_id",
        );
    }
    if q.get("duration").is_none_or(|d| !d.starts_with('P')) {
        return bad("Duration parameter is required");
    }
    let Some(redirect) = q.get("redirect_uri").filter(|r| is_loopback_redirect(r)) else {
        return bad("redirect_uri must be a registered loopback URI");
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return bad("code_challenge_method must be S256");
    }
    let Some(challenge) = q.get("code_challenge").filter(|c| c.len() >= 43) else {
        return bad("code_challenge is required");
    };
    let mut target = match url::Url::parse(redirect) {
        Ok(u) => u,
        Err(_) => return bad("redirect_uri is not a URL"),
    };
    {
        let mut pairs = target.query_pairs_mut();
        if s.deny_consent.load(Ordering::SeqCst) {
            pairs.append_pair("error", "access_denied");
            pairs.append_pair("error_description", "The customer refused the consent");
        } else {
            let code = new_token();
            lock(&s.codes).insert(
                code.clone(),
                CodeGrant {
                    redirect_uri: redirect.clone(),
                    challenge: challenge.clone(),
                    expires_at: s.clock.now() + CODE_LIFETIME,
                },
            );
            pairs.append_pair("code", &code);
            pairs.append_pair("usage_point_id", USAGE_POINT_ID);
        }
        if let Some(state) = q.get("state") {
            pairs.append_pair("state", state);
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(target.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

