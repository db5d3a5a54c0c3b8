//! Authentication: the account's login and password buy an access token,
//! sent as `Authorization: Bearer` on every API call.
//!
//! The token is a [`Secret`]: the HTTP client never logs it and cassettes
//! scrub it (it is learned from the bearer header).

use gleaner_framework::http::display_url;
use gleaner_framework::{KonnectorError, Result, RunContext, Secret};
use serde::Deserialize;

use super::api;

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// Asks for an access token; refused credentials are `LOGIN_FAILED`.
pub async fn token(ctx: &RunContext) -> Result<Secret> {
    let url = ctx.url(api::TOKEN)?;
    let resp = {
        let login = ctx.field("login")?;
        let password = ctx.secret("password")?;
        ctx.http()
            .post(&url)
            .json(&serde_json::json!({ "login": login, "password": password.expose() }))
            .send()
            .await?
    };
    match resp.status.as_u16() {
        200 => {
            let answer: TokenAnswer = resp.json()?;
            Ok(Secret::new(answer.access_token))
        }
        400 | 401 | 403 => Err(KonnectorError::login_failed(format!(
            "{} refused the login or password (HTTP {})",
            display_url(&resp.url),
            resp.status
        ))),
        _ => Err(KonnectorError::vendor_down(format!(
            "{} answered {} to the token request",
            display_url(&resp.url),
            resp.status
        ))),
    }
}
