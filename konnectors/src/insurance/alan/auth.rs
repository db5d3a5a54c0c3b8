//! The login: email and password posted as JSON to `/auth/login`, which
//! answers a token (a JWT) that every later call sends as a bearer token.
//! The API also sets it as the `token` cookie of `api.alan.com` (the clisk
//! konnector reads it there), which is how the statements' PDFs, fetched
//! through the framework's file download, are authorized.
//!
//! Outcomes (Cozy's konnector: 401 is `LOGIN_FAILED`, anything else
//! `VENDOR_DOWN`): 401 → `LOGIN_FAILED`; 429 and 503 are retried by the
//! HTTP client (honouring `Retry-After`), then `VENDOR_DOWN`; a maintenance
//! page → `MAINTENANCE`; a token that is not a JWT with an `id` →
//! `UNKNOWN_ERROR.SCHEMA_CHANGED`.
//!
//! Alan has no second factor in this flow: the public sources show none
//! (the web app's later login adds a check that the click is a real one,
//! which is why Cozy moved to a browser konnector; no code is asked).

use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext, Secret};

use super::api;

/// A logged-in session: the token and the user it belongs to.
pub struct Session {
    /// The bearer token.
    pub token: Secret,
    /// The user's id, from the token's payload.
    pub user_id: u64,
}

/// Logs in with the account's `login` (email) and `password`.
pub async fn login(ctx: &RunContext) -> Result<Session> {
    let email = ctx.field("login")?.to_owned();
    let password = ctx.secret("password")?;
    let url = ctx.url(api::LOGIN)?;
    let body = serde_json::json!({
        "email": email,
        "password": password.expose(),
        "refresh_token_type": "web",
    });
    let resp = ctx.http().post(&url).json(&body).send().await?;
    if resp.status.as_u16() == 401 {
        return Err(KonnectorError::login_failed(
            "Alan refused the email or the password (401)",
        ));
    }
    api::expect_json(&resp, "login")?;
    let answer: api::LoginAnswer = resp.json()?;
    let token = Secret::new(answer.token);
    let user_id = user_id_of(token.expose())?;
    Ok(Session { token, user_id })
}

/// The `id` claim of a JWT's payload (the old konnector's
/// `jwt(resp.token).id`). The signature is not checked: the token is only
/// read, never trusted for anything but the id in the URLs.
pub fn user_id_of(jwt: &str) -> Result<u64> {
    let schema = |why: &str| {
        KonnectorError::new(
            ErrorCode::SchemaChanged,
            format!("the login token is not the expected JWT: {why}"),
        )
    };
    let payload = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| schema("it has no payload part"))?;
    let bytes = base64url_decode(payload).ok_or_else(|| schema("its payload is not base64"))?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| schema("its payload is not JSON"))?;
    match claims.get("id") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| schema("its payload has no numeric `id`"))
}

/// Decodes unpadded (or padded) base64url; `None` on any other character.
fn base64url_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in input.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_user_id_is_read_from_the_jwt_payload() {
        // {"alg":"HS256","typ":"JWT"} . {"id":482913,"exp":1767225600} . sig
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6NDgyOTEzLCJleHAiOjE3NjcyMjU2MDB9.c2ln";
        assert_eq!(user_id_of(jwt).unwrap(), 482_913);
    }

    #[test]
    fn a_token_that_is_no_jwt_is_a_schema_change() {
        for bad in ["opaque-token", "a.!!!.c", "a.bm90IGpzb24.c", "a.e30.c"] {
            let err = user_id_of(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::SchemaChanged, "{bad}");
        }
    }
}
