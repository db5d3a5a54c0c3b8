//! The `oauth2` crate on our reqwest client, and its errors as
//! [`KonnectorError`]s.
//!
//! oauth2 5 is used without default features (they would pull a second
//! reqwest and `ring`); [`send`] adapts its `HttpRequest` to the
//! [`Transport`] seam of [`crate::http`] ([`token_transport`] by default,
//! the run's recording or replaying transport under a cassette).
//! The token client follows no redirect: a token endpoint that redirects is
//! misconfigured or hostile, and a redirected POST could leak the code or
//! the client secret.
//!
//! [`TokenResponse`] accepts `expires_in` as a number (RFC 6749) or as a
//! string (as in Enedis' published token API).

use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AccessToken, AuthType, AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    RefreshToken, RequestTokenError, Scope, StandardRevocableToken, TokenUrl,
};
use serde::{Deserialize, Deserializer, Serialize};

use super::{OAuthConfig, TokenSet};
use crate::error::{ErrorCode, ErrorSource, KonnectorError, Result, SourceKind};
use crate::http::{
    ReqwestTransport, Transport, TransportConfig, TransportError as HttpTransportError,
    TransportRequest, display_url,
};
use crate::secret::Secret;

/// The longest a token call may take. Kept under the store's 10 s busy
/// timeout, since a refresh holds the store's write lock (see
/// [`super::tokens`]).
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(8);

/// A token endpoint's answer.
#[derive(Debug, Deserialize, Serialize)]
pub struct TokenResponse {
    access_token: AccessToken,
    #[serde(deserialize_with = "oauth2::helpers::deserialize_untagged_enum_case_insensitive")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(rename = "scope")]
    #[serde(deserialize_with = "oauth2::helpers::deserialize_space_delimited_vec")]
    #[serde(serialize_with = "oauth2::helpers::serialize_space_delimited_vec")]
    #[serde(default)]
    scopes: Option<Vec<Scope>>,
}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        N(u64),
        S(String),
    }
    match Option::<Either>::deserialize(d)? {
        None => Ok(None),
        Some(Either::N(n)) => Ok(Some(n)),
        Some(Either::S(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expires_in `{s}` is not a number"))),
    }
}

impl oauth2::TokenResponse for TokenResponse {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

impl TokenResponse {
    /// The tokens as [`Secret`]s (registered for redaction), with the expiry
    /// computed from `now`.
    pub fn into_token_set(self, now: chrono::DateTime<chrono::Utc>) -> TokenSet {
        TokenSet {
            access_token: Secret::new(self.access_token.into_secret()),
            refresh_token: self.refresh_token.map(|r| Secret::new(r.into_secret())),
            expires_at: self
                .expires_in
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| now + chrono::Duration::seconds(s)),
        }
    }
}

/// An oauth2 client with a token endpoint and maybe a consent page.
pub type TokenClient<HasAuthUrl = EndpointNotSet> = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The oauth2 client for `config`'s token endpoint. The client secret, if
/// any, goes in HTTP Basic, as RFC 6749 recommends.
pub fn token_client(config: &OAuthConfig) -> TokenClient {
    let mut client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
        .set_token_uri(TokenUrl::from_url(config.token_url.clone()))
        .set_auth_type(AuthType::BasicAuth);
    if let Some(secret) = &config.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    client
}

/// [`token_client`] with the consent page set.
pub fn authorize_client(config: &OAuthConfig) -> Result<TokenClient<EndpointSet>> {
    let url = config.authorize_url.clone().ok_or_else(|| {
        KonnectorError::new(
            ErrorCode::ManifestInvalid,
            "the konnector's [oauth] section has no authorize_url",
        )
    })?;
    Ok(token_client(config).set_auth_uri(AuthUrl::from_url(url)))
}

/// The transport for token calls: reqwest with short timeouts (at most
/// [`TOKEN_TIMEOUT`] in all) and, as every [`Transport`], no redirects.
pub fn token_transport() -> Result<Arc<dyn Transport>> {
    let transport = ReqwestTransport::new(TransportConfig {
        connect_timeout: TOKEN_TIMEOUT,
        request_timeout: TOKEN_TIMEOUT,
        read_timeout: TOKEN_TIMEOUT,
        total_timeout: Some(TOKEN_TIMEOUT),
        user_agent: concat!("gleaner/", env!("CARGO_PKG_VERSION")).to_owned(),
        ..TransportConfig::default()
    })
    .map_err(|e| {
        KonnectorError::new(
            ErrorCode::UnknownError,
            format!("cannot build the OAuth HTTP client: {}", e.message),
        )
    })?;
    Ok(Arc::new(transport))
}

/// The HTTP client for token calls over [`token_transport`].
pub fn http_client() -> Result<OAuthHttp> {
    Ok(OAuthHttp(token_transport()?))
}

/// A [`Transport`] as oauth2's HTTP client (its futures are `Send`, so
/// token calls can run inside konnector runs on any worker thread). Token
/// calls go through the same seam as the konnector's own requests, so a
/// run's recording or replaying transport sees them too.
#[derive(Clone)]
pub struct OAuthHttp(pub Arc<dyn Transport>);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = TransportError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = std::result::Result<oauth2::HttpResponse, TransportError>,
                > + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(self.0.as_ref(), request))
    }
}

/// A failure to talk to the token endpoint (no answer, or a cut body).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

/// Sends one oauth2 request through `transport`: the adapter between
/// oauth2's `HttpRequest` and the [`Transport`] seam.
pub async fn send(
    transport: &dyn Transport,
    request: oauth2::HttpRequest,
) -> std::result::Result<oauth2::HttpResponse, TransportError> {
    let (parts, body) = request.into_parts();
    let target = crate::http::strip_query(&parts.uri.to_string());
    let url = url::Url::parse(&parts.uri.to_string())
        .map_err(|e| TransportError(format!("`{target}` is not a URL: {e}")))?;
    let mut headers = parts.headers;
    // oauth2 puts the client secret (Basic) or nothing here: sensitive.
    if let Some(v) = headers.get_mut(reqwest::header::AUTHORIZATION) {
        v.set_sensitive(true);
    }
    let response = transport
        .exchange(TransportRequest {
            method: parts.method,
            url,
            headers,
            body: body.into(),
        })
        .await
        .map_err(|e| match e {
            HttpTransportError::Rejected(e) => TransportError(e.message),
            e @ (HttpTransportError::BodyCut(_) | HttpTransportError::BodyTimeout(_)) => {
                TransportError(format!("the answer of {target} was cut off: {e}"))
            }
            e => TransportError(format!("could not reach {target}: {e}")),
        })?;
    let status = response.status;
    let mut out = oauth2::http::Response::new(response.body.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = response.headers;
    tracing::debug!(url = %target, status = status.as_u16(), "oauth token call");
    Ok(out)
}
/// Turns a token call's failure into a Cozy-style error, whose source is
/// the provider ([`SourceKind::Provider`]): a refused grant
/// (`invalid_grant`) is `USER_ACTION_NEEDED.OAUTH_OUTDATED`, a refused client
/// `LOGIN_FAILED`, an unreachable or garbled endpoint `VENDOR_DOWN`. Nothing
/// of the request (code, tokens, secret) is in the message.
pub fn token_error(
    e: RequestTokenError<TransportError, BasicErrorResponse>,
    config: &OAuthConfig,
    what: &str,
) -> KonnectorError {
    let endpoint = display_url(&config.token_url);
    let error = match e {
        RequestTokenError::ServerResponse(r) => {
            let described = match r.error_description() {
                Some(d) => format!("{} ({})", r.error(), crate::redact::scrub(d)),
                None => r.error().to_string(),
            };
            let code = match r.error() {
                BasicErrorResponseType::InvalidGrant => ErrorCode::UserActionNeededOauthOutdated,
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient => ErrorCode::LoginFailed,
                _ => ErrorCode::UnknownError,
            };
            // The next step (consent again) travels as the code's
            // `UserAction`, worded by the front end.
            let advice = if code == ErrorCode::UserActionNeededOauthOutdated {
                "; the consent must be given again"
            } else {
                ""
            };
            KonnectorError::new(
                code,
                format!("{endpoint} refused the {what}: {described}{advice}"),
            )
        }
        RequestTokenError::Request(t) => KonnectorError::vendor_down(format!("{what}: {t}")),
        RequestTokenError::Parse(e, _body) => KonnectorError::vendor_down(format!(
            "{endpoint} answered the {what} with something that is not a token response: {}",
            e.path()
        )),
        RequestTokenError::Other(msg) => {
            KonnectorError::vendor_down(format!("{endpoint} failed the {what}: {msg}"))
        }
    };
    // The provider's token endpoint answered (or could not be reached):
    // never the vault or the store.
    error.with_source(ErrorSource::new(SourceKind::Provider))
}
