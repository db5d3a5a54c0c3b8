//! Authorization: every API call carries the account's OAuth access token.
//!
//! The consent itself (browser, loopback redirect, code exchange) is the
//! framework's ([`gleaner_framework::oauth`]); so are refreshes. Here: send
//! a call with the token, and if the API still says 401 (a token revoked
//! before its expiry), refresh once and try again.

use gleaner_framework::http::Response;
use gleaner_framework::{ErrorCode, KonnectorError, Result, RunContext};

/// `GET url` with the access token; one refresh on a 401.
pub async fn get(ctx: &RunContext, url: &str) -> Result<Response> {
    let token = ctx.access_token().await?;
    let resp = ctx.http().get_bearer(url, &token).await?;
    if resp.status.as_u16() != 401 {
        return Ok(resp);
    }
    tracing::info!("the API refused the access token; refreshing it once");
    let token = ctx.refresh_access_token(&token).await?;
    let resp = ctx.http().get_bearer(url, &token).await?;
    if resp.status.as_u16() == 401 {
        return Err(KonnectorError::new(
            ErrorCode::UserActionNeededOauthOutdated,
            "Enedis refused a freshly refreshed access token: the consent must be given again",
        ));
    }
    Ok(resp)
}
