//! OAuth2 for konnectors: consent, token storage and refresh.
//!
//! Built on the `oauth2` crate (5.x, without its default HTTP client): a small
//! adapter in [`client`] sends its requests with our reqwest client, with
//! redirects turned off as oauth2's docs advise for token calls.
//!
//! - [`flow`]: the authorization code grant with PKCE (S256). [`flow::start`]
//!   builds the consent URL and a [`flow::PendingAuthorization`] whose `state`
//!   expires after [`flow::STATE_LIFETIME`]; the redirect is checked
//!   (state, expiry, `error=`) and the code exchanged for tokens.
//! - [`loopback`]: the redirect listener on `127.0.0.1:<port>` (axum), as
//!   `gh auth login` and rclone do.
//! - [`tokens`]: [`tokens::TokenManager`] keeps each account's tokens sealed by
//!   the vault in the `oauth_tokens` table and hands out access tokens,
//!   refreshing them when less than [`tokens::REFRESH_MARGIN`] is left. A
//!   rotated refresh token is written in the same transaction that read the
//!   old one, right after the provider answers and before the access token
//!   is used; one refresh at a time per account, in the process (an async
//!   mutex) and across processes (`BEGIN IMMEDIATE`).
//!
//! Konnectors only see [`crate::RunContext::access_token`] and
//! [`crate::HttpClient::get_bearer`].

pub mod client;
pub mod flow;
pub mod loopback;
pub mod tokens;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use url::Url;

use crate::error::{ErrorCode, KonnectorError, Result};
use crate::manifest::{OAuthGrant, OAuthSpec};
use crate::secret::Secret;

pub use flow::{Callback, PendingAuthorization};
pub use loopback::LoopbackRedirect;
pub use tokens::{RefreshHook, RefreshStage, TokenManager};

pub use crate::clock::{Clock, ManualClock, SystemClock};

/// Tokens as the provider issued them.
pub struct TokenSet {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<Secret>,
    /// When the access token expires, when the provider said.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A manifest's `[oauth]` section made concrete for one account: URLs
/// pointed at the account's endpoint (a sandbox) when it has one, and the
/// client secret found.
#[derive(Clone)]
pub struct OAuthConfig {
    /// The grant.
    pub grant: OAuthGrant,
    /// The consent page.
    pub authorize_url: Option<Url>,
    /// The token endpoint.
    pub token_url: Url,
    /// The client id.
    pub client_id: String,
    /// The client secret, when there is one.
    pub client_secret: Option<Secret>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Whether PKCE is used.
    pub pkce: bool,
    /// Extra consent URL parameters.
    pub authorize_params: BTreeMap<String, String>,
    /// Redirect parameters kept as account fields.
    pub callback_fields: Vec<String>,
}

impl OAuthConfig {
    /// Resolves `spec` for an account: `endpoint` replaces the scheme, host
    /// and port of both URLs (as it replaces the manifest's `base_url`), and
    /// the client secret comes from the secret field `client_secret_field`,
    /// else from the variable `client_secret_env`.
    pub fn resolve(
        spec: &OAuthSpec,
        endpoint: Option<&str>,
        secrets: &BTreeMap<String, Secret>,
    ) -> Result<Self> {
        let endpoint = endpoint
            .map(|e| {
                Url::parse(e).map_err(|err| {
                    KonnectorError::new(
                        ErrorCode::UnknownError,
                        format!("the endpoint `{e}` is not a URL: {err}"),
                    )
                })
            })
            .transpose()?;
        let url = |link: &str| -> Result<Url> {
            let mut u = Url::parse(link).map_err(|e| {
                KonnectorError::new(
                    ErrorCode::ManifestInvalid,
                    format!("oauth URL `{link}` is not a URL: {e}"),
                )
            })?;
            if let Some(ep) = &endpoint {
                let bad = |_| {
                    KonnectorError::new(
                        ErrorCode::UnknownError,
                        format!("cannot point `{link}` at the endpoint"),
                    )
                };
                u.set_scheme(ep.scheme()).map_err(bad)?;
                u.set_host(ep.host_str()).map_err(|_| bad(()))?;
                u.set_port(ep.port()).map_err(bad)?;
            }
            Ok(u)
        };
        let from_field = spec
            .client_secret_field
            .as_ref()
            .and_then(|f| secrets.get(f))
            .filter(|s| !s.is_empty())
            .cloned();
        let client_secret = from_field.or_else(|| {
            spec.client_secret_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        });
        if client_secret.is_none()
            && (spec.client_secret_field.is_some() || spec.client_secret_env.is_some())
        {
            let mut places = Vec::new();
            if let Some(f) = &spec.client_secret_field {
                places.push(format!("the account's field `{f}`"));
            }
            if let Some(v) = &spec.client_secret_env {
                places.push(format!("the environment variable {v}"));
            }
            return Err(KonnectorError::new(
                ErrorCode::LoginFailedNeedsSecret,
                format!("no OAuth client secret: set {}", places.join(" or ")),
            ));
        }
        Ok(Self {
            grant: spec.grant,
            authorize_url: spec.authorize_url.as_deref().map(url).transpose()?,
            token_url: url(&spec.token_url)?,
            client_id: spec.client_id.clone(),
            client_secret,
            scopes: spec.scopes.clone(),
            pkce: spec.pkce,
            authorize_params: spec.authorize_params.clone(),
            callback_fields: spec.callback_fields.clone(),
        })
    }
}
