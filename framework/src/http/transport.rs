//! The transport seam: one HTTP exchange, nothing more.
//!
//! A [`Transport`] sends one request and reads its response whole. It
//! follows **no redirect** and keeps **no cookie**: the allow-list, the
//! endpoint policy, the request budget, retries, `Retry-After`, the cookie
//! jar and redirect following all live above it, in
//! [`super::HttpClient`]. So a transport can be swapped (record, replay, a
//! test double) without weakening any policy.
//!
//! [`ReqwestTransport`] is the real one: reqwest with the process's shared
//! rustls configuration, the [`GuardedResolver`] (no link-local or metadata
//! address is dialled even after DNS), timeouts and a body cap.
//!
//! Failures are typed ([`TransportError`]) so that the policy layer decides
//! what is retried and words the message; a transport never builds user
//! messages itself, apart from the detail it carries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use url::Url;

use crate::endpoint::{GuardedResolver, find_refused_resolution};
use crate::error::{ErrorCode, KonnectorError, Result};

/// One request as a transport sends it.
#[derive(Debug, Clone)]
pub struct TransportRequest {
    /// The method.
    pub method: Method,
    /// The URL (query included).
    pub url: Url,
    /// The headers, `Cookie` included when the jar had some. Values marked
    /// sensitive (`HeaderValue::set_sensitive`) are secrets.
    pub headers: HeaderMap,
    /// The body (empty for none).
    pub body: Bytes,
}

/// One response, read whole.
#[derive(Debug, Clone)]
pub struct TransportResponse {
    /// The status code.
    pub status: StatusCode,
    /// The headers (`Set-Cookie` included, for the jar above).
    pub headers: HeaderMap,
    /// The body, at most the transport's cap.
    pub body: Bytes,
    /// The URL that answered (the request's: transports follow no redirect).
    pub url: Url,
}

/// Why an exchange failed. The policy layer ([`super::HttpClient`]) maps
/// each to a message and a retry decision.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No response headers within the request timeout (carried).
    #[error("no answer within {0:?} (the request timeout)")]
    RequestTimeout(Duration),
    /// No connection within the connect timeout (carried).
    #[error("no connection within {0:?} (the connect timeout)")]
    ConnectTimeout(Duration),
    /// Silence longer than the read timeout before the headers came.
    #[error("no answer for {after:?} (the read timeout): {detail}")]
    ReadTimeout {
        /// The read timeout.
        after: Duration,
        /// The causes, without the URL.
        detail: String,
    },
    /// The connection could not be made (refused, unknown name): nothing
    /// was sent.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The exchange failed after the request may have been sent.
    #[error("request failed: {0}")]
    Failed(String),
    /// The name resolves only to refused addresses (link-local, metadata).
    #[error("{0}")]
    RefusedResolution(String),
    /// The server's TLS certificate was refused.
    #[error("certificate refused: {0}")]
    Certificate(String),
    /// The body stopped coming for longer than the read timeout (carried).
    #[error("the body stopped coming for {0:?}")]
    BodyTimeout(Duration),
    /// The body was cut off.
    #[error("the body was cut off: {0}")]
    BodyCut(String),
    /// The transport refuses the exchange with a final error (a replay
    /// that has no such request): returned as is, never retried.
    #[error("{0}")]
    Rejected(KonnectorError),
}

/// One HTTP exchange. Object safe: held as `Arc<dyn Transport>`.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` and reads the response whole. Follows no redirect,
    /// keeps no cookie.
    async fn exchange(
        &self,
        request: TransportRequest,
    ) -> std::result::Result<TransportResponse, TransportError>;
}

/// Settings of a [`ReqwestTransport`].
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time from sending a request to its response's headers.
    pub request_timeout: Duration,
    /// The longest silence while waiting for or reading a response.
    pub read_timeout: Duration,
    /// A limit on the whole exchange (token calls), if any.
    pub total_timeout: Option<Duration>,
    /// The User-Agent sent.
    pub user_agent: String,
    /// The largest body read into memory; the rest is dropped (the
    /// caller's checks refuse a truncated file).
    pub max_body: usize,
    /// A client certificate for mutual TLS (banks' PSD2 interfaces ask for
    /// one); `None`: no client authentication.
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate (with its chain) and its private key, PEM, for
/// mutual TLS. Checked when made; its `Debug` shows no byte of the key,
/// and the bytes are zeroed when the last clone is dropped.
#[derive(Clone)]
pub struct ClientIdentity(Arc<zeroize::Zeroizing<Vec<u8>>>);

impl ClientIdentity {
    /// The certificate(s) and the private key (RSA, SEC1 or PKCS#8), PEM,
    /// in one buffer. Fails with `LOGIN_FAILED` (the person's credentials)
    /// naming what is wrong, never quoting the bytes.
    pub fn from_pem(pem: Vec<u8>) -> Result<Self> {
        let pem = zeroize::Zeroizing::new(pem);
        reqwest::Identity::from_pem(&pem).map_err(|e| {
            KonnectorError::login_failed(format!(
                "the client certificate and key cannot be used: {}",
                super::error_chain(&e)
            ))
        })?;
        Ok(Self(Arc::new(pem)))
    }

    fn to_reqwest(&self) -> Result<reqwest::Identity> {
        reqwest::Identity::from_pem(&self.0).map_err(|e| {
            KonnectorError::login_failed(format!(
                "the client certificate and key cannot be used: {}",
                super::error_chain(&e)
            ))
        })
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(..)")
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            total_timeout: None,
            user_agent: super::USER_AGENT.to_owned(),
            max_body: super::MAX_BODY_BYTES,
            client_identity: None,
        }
    }
}

/// The real transport: reqwest, without redirects and without cookies.
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    config: Arc<TransportConfig>,
}

impl ReqwestTransport {
    /// Builds a transport (sharing the process's TLS configuration).
    pub fn new(config: TransportConfig) -> Result<Self> {
        let mut builder = reqwest::Client::builder();
        match &config.client_identity {
            // The shared configuration has no client authentication: a
            // client with a certificate builds its own.
            Some(identity) => builder = builder.identity(identity.to_reqwest()?),
            None => {
                if let Some(tls) = super::shared_tls() {
                    builder = builder.tls_backend_preconfigured(tls.clone());
                }
            }
        }
        if let Some(total) = config.total_timeout {
            builder = builder.timeout(total);
        }
        let client = builder
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(GuardedResolver::system())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|e| {
                KonnectorError::new(
                    ErrorCode::UnknownError,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(Self {
            client,
            config: Arc::new(config),
        })
    }

    fn classify(&self, e: &reqwest::Error) -> TransportError {
        if let Some(refused) = find_refused_resolution(e) {
            return TransportError::RefusedResolution(refused.to_string());
        }
        let chain = super::error_chain(e);
        if chain.contains("certificate") {
            return TransportError::Certificate(chain);
        }
        if e.is_timeout() {
            if e.is_connect() {
                return TransportError::ConnectTimeout(self.config.connect_timeout);
            }
            return TransportError::ReadTimeout {
                after: self.config.read_timeout,
                detail: chain,
            };
        }
        if e.is_connect() {
            TransportError::Connect(chain)
        } else {
            TransportError::Failed(chain)
        }
    }
}

#[async_trait::async_trait]
impl Transport for ReqwestTransport {
    async fn exchange(
        &self,
        request: TransportRequest,
    ) -> std::result::Result<TransportResponse, TransportError> {
        let req = self
            .client
            .request(request.method, request.url.clone())
            .headers(request.headers)
            .body(request.body);
        let resp = match tokio::time::timeout(self.config.request_timeout, req.send()).await {
            Err(_elapsed) => {
                return Err(TransportError::RequestTimeout(self.config.request_timeout));
            }
            Ok(Err(e)) => return Err(self.classify(&e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let url = resp.url().clone();
        let body = read_body(resp, self.config.max_body).await.map_err(|e| {
            if e.is_timeout() {
                TransportError::BodyTimeout(self.config.read_timeout)
            } else {
                TransportError::BodyCut(e.without_url().to_string())
            }
        })?;
        Ok(TransportResponse {
            status,
            headers,
            body,
            url,
        })
    }
}

async fn read_body(
    mut resp: reqwest::Response,
    max: usize,
) -> std::result::Result<Bytes, reqwest::Error> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if buf.len() + chunk.len() > max {
            // Keep what fits: the caller's checks (size, type) will refuse it.
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../../fixtures/tls/self-signed.crt");
    const KEY: &str = include_str!("../../../fixtures/tls/self-signed.key");

    #[test]
    fn a_client_identity_is_checked_and_never_shown() {
        let pem = format!("{CERT}\n{KEY}").into_bytes();
        let identity = ClientIdentity::from_pem(pem).expect("a certificate and its key");
        assert_eq!(format!("{identity:?}"), "ClientIdentity(..)");
        let config = TransportConfig {
            client_identity: Some(identity),
            ..TransportConfig::default()
        };
        assert!(!format!("{config:?}").contains("PRIVATE"));
        assert!(ReqwestTransport::new(config).is_ok());
        for bad in [CERT.as_bytes().to_vec(), b"not pem".to_vec()] {
            let err = ClientIdentity::from_pem(bad).expect_err("no key");
            assert_eq!(err.code, ErrorCode::LoginFailed);
        }
    }
}
