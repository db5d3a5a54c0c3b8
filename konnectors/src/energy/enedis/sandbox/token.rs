//! `POST /oauth2/v3/token`: client authentication (HTTP Basic or form),
//! grants `authorization_code` (PKCE), `refresh_token` (single use) and
//! `client_credentials`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{AccessGrant, CLIENT_ID, Inner, TOKEN_LATENCY, USAGE_POINT_ID, error, lock, new_token};

/// The client id and secret, from HTTP Basic (form-encoded parts, RFC 6749
/// 2.3.1) or from the form.
fn client_auth(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (id, secret) = raw.split_once(':')?;
        let dec = |p: &str| {
            url::form_urlencoded::parse(format!("x={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((dec(id)?, dec(secret)?));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

pub(super) async fn token(State(s): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    tokio::time::sleep(TOKEN_LATENCY).await;
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Le Content-Type doit être application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    match client_auth(&headers, &form) {
        Some((id, secret))
            if id == CLIENT_ID
                && *secret
                    == *s
                        .client_secret
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) => {}
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method)",
            );
        }
    }
    let invalid_grant = || {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The provided authorization grant (e.g. authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client",
        )
    };
    let now = s.clock.now();
    let (refresh, usage_point) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            // Single use: the code is gone whatever happens next.
            let Some(grant) = form.get("code").and_then(|c| lock(&s.codes).remove(c)) else {
                return invalid_grant();
            };
            let verifier_ok = form.get("code_verifier").is_some_and(|v| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v))
                    == grant.challenge
            });
            if grant.expires_at < now
                || form.get("redirect_uri") != Some(&grant.redirect_uri)
                || !verifier_ok
            {
                return invalid_grant();
            }
            (true, Some(USAGE_POINT_ID.to_owned()))
        }
        Some("refresh_token") => {
            s.refresh_requests.fetch_add(1, Ordering::SeqCst);
            let Some(old) = form.get("refresh_token") else {
                return invalid_grant();
            };
            let mut refresh = lock(&s.refresh);
            match refresh.get_mut(old) {
                Some(live) if *live => *live = false,
                _ => return invalid_grant(),
            }
            (true, Some(USAGE_POINT_ID.to_owned()))
        }
        Some("client_credentials") => (false, None),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server",
            );
        }
    };
    let lifetime = *lock(&s.lifetime);
    let access = new_token();
    lock(&s.access).insert(
        access.clone(),
        AccessGrant {
            expires_at: now + chrono::Duration::seconds(lifetime),
            usage_point,
        },
    );
    let mut answer = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime.to_string(),
        "scope": "",
    });
    if refresh {
        let new_refresh = new_token();
        lock(&s.refresh).insert(new_refresh.clone(), true);
        answer["refresh_token"] = json!(new_refresh);
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        answer.to_string(),
    )
        .into_response()
}

