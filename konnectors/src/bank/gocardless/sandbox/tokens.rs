//! `POST /api/v2/token/new/` and `POST /api/v2/token/refresh/`: JSON or
//! form bodies, as the spec allows.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::{Grant, Inner, REFRESH_LIFETIME, SECRET_ID, SECRET_KEY, answer, error, lock};

/// The body's fields, from JSON or a form.
fn fields(headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        serde_json::from_slice::<HashMap<String, serde_json::Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}

fn token() -> String {
    // JWT-like: three dot-separated parts.
    format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn issue_access(s: &Inner) -> (String, i64) {
    let lifetime = *lock(&s.access_lifetime);
    let access = token();
    lock(&s.access).insert(
        access.clone(),
        Grant {
            expires_at: s.now() + chrono::Duration::seconds(lifetime),
        },
    );
    (access, lifetime)
}

pub(super) async fn new_pair(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = fields(&headers, &body);
    let (Some(id), Some(key)) = (f.get("secret_id"), f.get("secret_key")) else {
        return answer(
            StatusCode::BAD_REQUEST,
            &json!({"secret_id": ["This field is required."], "secret_key": ["This field is required."], "status_code": 400}),
            &[],
        );
    };
    if id != SECRET_ID || key != SECRET_KEY {
        return error(
            StatusCode::UNAUTHORIZED,
            "Authentication failed",
            "No active account found with the given credentials",
            None,
        );
    }
    let (access, lifetime) = issue_access(&s);
    let refresh = token();
    lock(&s.refresh).insert(
        refresh.clone(),
        Grant {
            expires_at: s.now() + chrono::Duration::seconds(REFRESH_LIFETIME),
        },
    );
    answer(
        StatusCode::OK,
        &json!({
            "access": access,
            "access_expires": lifetime,
            "refresh": refresh,
            "refresh_expires": REFRESH_LIFETIME,
        }),
        &[],
    )
}

pub(super) async fn refresh(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = fields(&headers, &body);
    let now = s.now();
    let live = f
        .get("refresh")
        .is_some_and(|r| lock(&s.refresh).get(r).is_some_and(|g| g.expires_at > now));
    if !live {
        return error(
            StatusCode::UNAUTHORIZED,
            "Invalid token",
            "Token is invalid or expired",
            None,
        );
    }
    let (access, lifetime) = issue_access(&s);
    answer(
        StatusCode::OK,
        &json!({"access": access, "access_expires": lifetime}),
        &[],
    )
}
