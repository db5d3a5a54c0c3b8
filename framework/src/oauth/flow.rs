//! The authorization code grant: consent URL, redirect check, code exchange.
//!
//! [`start`] makes a random `state` and (with `pkce = true`) a PKCE S256
//! verifier, and builds the consent URL. The person consents in a browser;
//! the provider redirects to the loopback listener with `code` and `state`.
//! [`PendingAuthorization::check`] refuses a redirect whose `state` is not
//! ours or is older than [`STATE_LIFETIME`] (Cozy's 15 minutes), or that
//! carries `error=`; [`PendingAuthorization::exchange`] trades the code for
//! tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use url::Url;

use super::{Clock, OAuthConfig, TokenSet, client};
use crate::error::{ErrorCode, KonnectorError, Result};
use crate::manifest::OAuthGrant;
use crate::secret::Secret;

/// How long a consent URL's `state` stays valid.
pub const STATE_LIFETIME: chrono::Duration = chrono::Duration::minutes(15);

/// An authorization waiting for its redirect.
pub struct PendingAuthorization {
    config: OAuthConfig,
    state: Secret,
    verifier: Option<Secret>,
    redirect_uri: String,
    created_at: DateTime<Utc>,
    clock: Arc<dyn Clock>,
}

/// What a valid redirect brought.
pub struct Callback {
    /// The authorization code.
    pub code: Secret,
    /// The redirect's parameters named in the manifest's `callback_fields`.
    pub fields: BTreeMap<String, String>,
}

/// Starts an authorization: returns the consent URL to open and what is
/// needed to finish it.
pub fn start(
    config: &OAuthConfig,
    redirect_uri: &str,
    clock: Arc<dyn Clock>,
) -> Result<(Url, PendingAuthorization)> {
    if config.grant != OAuthGrant::AuthorizationCode {
        return Err(KonnectorError::new(
            ErrorCode::UnknownError,
            "only the authorization_code grant asks for consent",
        ));
    }
    let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| {
        KonnectorError::new(
            ErrorCode::UnknownError,
            format!("`{redirect_uri}` is not a redirect URL: {e}"),
        )
    })?;
    let oauth = client::authorize_client(config)?.set_redirect_uri(redirect);
    let mut request = oauth
        .authorize_url(CsrfToken::new_random)
        .add_scopes(config.scopes.iter().cloned().map(Scope::new));
    for (k, v) in &config.authorize_params {
        request = request.add_extra_param(k.clone(), v.clone());
    }
    let verifier = if config.pkce {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        request = request.set_pkce_challenge(challenge);
        Some(Secret::new(verifier.into_secret()))
    } else {
        None
    };
    let (url, state) = request.url();
    let pending = PendingAuthorization {
        config: config.clone(),
        state: Secret::new(state.into_secret()),
        verifier,
        redirect_uri: redirect_uri.to_owned(),
        created_at: clock.now(),
        clock,
    };
    Ok((url, pending))
}

impl PendingAuthorization {
    /// The redirect URI the consent URL names.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// When the `state` stops being accepted.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.created_at + STATE_LIFETIME
    }

    /// Time left before the state expires, by the authorization's clock.
    pub fn remaining(&self) -> std::time::Duration {
        (self.expires_at() - self.clock.now())
            .to_std()
            .unwrap_or_default()
    }

    /// Checks a redirect's query parameters: our `state`, not expired, no
    /// `error`, a `code`.
    pub fn check(&self, params: &BTreeMap<String, String>) -> Result<Callback> {
        let outdated =
            |msg: String| KonnectorError::new(ErrorCode::UserActionNeededOauthOutdated, msg);
        match params.get("state") {
            Some(s) if s == self.state.expose() => {}
            Some(_) => {
                return Err(outdated(
                    "the redirect's state is not the one this authorization sent: refused (a stale tab, or a forged request); start again".into(),
                ));
            }
            None => return Err(outdated("the redirect has no state: refused".into())),
        }
        if self.clock.now() > self.expires_at() {
            return Err(outdated(format!(
                "the consent came back after more than {} minutes: the authorization expired; start again",
                STATE_LIFETIME.num_minutes()
            )));
        }
        if let Some(error) = params.get("error") {
            let why = params
                .get("error_description")
                .map(|d| format!(" ({})", crate::redact::scrub(d)))
                .unwrap_or_default();
            let code = if error == "access_denied" {
                ErrorCode::UserActionNeeded
            } else {
                ErrorCode::UserActionNeededOauthOutdated
            };
            return Err(KonnectorError::new(
                code,
                format!("the provider did not grant access: {error}{why}"),
            ));
        }
        let code = params
            .get("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| outdated("the redirect has no code".into()))?;
        let mut fields = BTreeMap::new();
        for name in &self.config.callback_fields {
            let value = params.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                KonnectorError::new(
                    ErrorCode::PageChanged,
                    format!("the redirect has no `{name}`, which the konnector needs"),
                )
            })?;
            fields.insert(name.clone(), value.clone());
        }
        Ok(Callback {
            code: Secret::new(code.clone()),
            fields,
        })
    }

    /// Exchanges the code for tokens (with the PKCE verifier).
    pub async fn exchange(&self, callback: &Callback) -> Result<TokenSet> {
        let redirect = RedirectUrl::new(self.redirect_uri.clone()).map_err(|e| {
            KonnectorError::new(ErrorCode::UnknownError, format!("bad redirect URL: {e}"))
        })?;
        let oauth = client::token_client(&self.config).set_redirect_uri(redirect);
        let http = client::http_client()?;
        let mut request =
            oauth.exchange_code(AuthorizationCode::new(callback.code.expose().to_owned()));
        if let Some(v) = &self.verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(v.expose().to_owned()));
        }
        let response = request
            .request_async(&http)
            .await
            .map_err(|e| client::token_error(e, &self.config, "authorization code"))?;
        tracing::info!("authorization code exchanged for tokens");
        Ok(response.into_token_set(self.clock.now()))
    }
}
