//! The HTTP client every konnector uses: policies above a transport seam.
//!
//! One [`HttpClient`] per run. It stacks, in this order, what no konnector
//! should write again:
//! - the **host allow-list** from the manifest: a request (or a redirect) to
//!   any other host is refused with `UNKNOWN_ERROR.HOST_NOT_ALLOWED` before
//!   a byte leaves the process;
//! - a **per-host request budget**, so a pagination loop cannot hammer a
//!   provider (every hop of a redirect counts);
//! - **retries** on network errors, 5xx and 429, with exponential backoff and
//!   jitter, honouring `Retry-After` up to a cap (a longer `Retry-After` ends
//!   the run with `VENDOR_DOWN` carrying the delay, for the scheduler);
//! - the **endpoint policy** of [`crate::endpoint`]: only `http` and
//!   `https`, and never a link-local or cloud metadata address, neither as
//!   a literal IP nor after DNS resolution
//!   ([`crate::endpoint::GuardedResolver`], in [`ReqwestTransport`]);
//! - **redirect following** (at most [`MAX_REDIRECTS`]), each hop checked
//!   against the endpoint policy and the allow-list, and a persistent
//!   **cookie jar** applied on every hop (`Cookie` out, `Set-Cookie` in,
//!   redirect responses included);
//! - an optional **activity hook** ([`HttpClient::set_activity`]) told which
//!   request the client waits on, for progress displays.
//!
//! Beneath them, the [`Transport`] seam ([`transport`]) sends one exchange:
//! [`ReqwestTransport`] in production (a realistic User-Agent and timeouts: a
//! connection within 10 s, response headers within 30 s, and no silence
//! longer than 30 s while a body is read, so that a server that never
//! answers ends the run with `VENDOR_DOWN` naming the host and the
//! timeout, well before the run's own time limit), and the recording and
//! replaying transports of [`crate::cassette`].
//!
//! Requests are built with [`HttpClient::request`] ([`request`]), and JSON
//! answers decoded with [`Response::json`] (`json.rs`), whose error names
//! the JSON path that did not fit.
//!
//! URLs in errors and logs are stripped of their query string, which can
//! carry tokens; header values are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
pub use reqwest::header;
use reqwest::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue,
    LOCATION, PROXY_AUTHORIZATION, REFERER, RETRY_AFTER, SET_COOKIE, TRANSFER_ENCODING,
    WWW_AUTHENTICATE,
};
pub use reqwest::{Method, StatusCode};
use reqwest_cookie_store::CookieStoreMutex;
use url::Url;

use crate::endpoint::AllowList;
use crate::error::{ErrorCode, ErrorSource, KonnectorError, Result, SourceKind};

mod json;
pub mod request;
pub mod transport;

pub use request::RequestBuilder;
pub use transport::{
    ReqwestTransport, Transport, TransportConfig, TransportError, TransportRequest,
    TransportResponse,
};

/// A desktop browser's User-Agent: providers serve their normal pages to it.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// The largest body the client reads into memory (64 MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// When and how often to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts).
    pub max_retries: u32,
    /// The first backoff delay; it doubles each retry.
    pub base_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// The longest `Retry-After` the client waits for inside a run. A longer
    /// one ends the run with `VENDOR_DOWN` and the delay attached.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0-based): `base * 2^retry`,
    /// capped, with "equal jitter" (half fixed, half random) so that many
    /// clients retrying together spread out.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Settings of one client.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Hosts the client may contact, optionally with a port
    /// (`mobile.free.fr`, `127.0.0.1:8080`).
    pub allowed_hosts: Vec<String>,
    /// The most requests sent to one host during the client's life.
    pub request_budget: u32,
    /// Retry settings.
    pub retry: RetryPolicy,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time from sending a request to its response's headers.
    pub request_timeout: Duration,
    /// The longest silence while waiting for or reading a response (each
    /// read of the connection); a large body that keeps coming is not cut.
    pub read_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            request_budget: 500,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            // Five attempts (four retries) of a server that never answers
            // take about 2.5 minutes: the run fails with VENDOR_DOWN naming
            // the timeout before its own 5-minute limit.
            request_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// What a client did, for run reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Requests sent (retries included).
    pub requests: u32,
    /// Retries made.
    pub retries: u32,
    /// The delays waited before each retry.
    pub waits: Vec<Duration>,
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The final URL, after redirects.
    pub url: Url,
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Content-Type` without parameters, lowercased.
    pub fn content_type(&self) -> Option<String> {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
    }
}

/// A request the client is waiting on, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The host (with its port when not the scheme's default).
    pub host: String,
    /// The method and path, such as `GET /invoices` (never the query).
    pub request: String,
    /// The attempt number, from 1 (retries count up).
    pub attempt: u32,
}

impl std::fmt::Display for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "waiting for {} ({})", self.host, self.request)?;
        if self.attempt > 1 {
            write!(f, ", attempt {}", self.attempt)?;
        }
        Ok(())
    }
}

/// Told when a request starts (`Some`) and when the client stops waiting
/// on it (`None`).
pub type ActivityFn = Arc<dyn Fn(Option<&Activity>) + Send + Sync>;

/// The konnector HTTP client. Cheap to clone (shares the transport, the
/// cookie jar, the counters and the activity hook).
#[derive(Clone)]
pub struct HttpClient {
    transport: Arc<dyn Transport>,
    jar: Arc<CookieStoreMutex>,
    allow: Arc<AllowList>,
    config: Arc<HttpConfig>,
    per_host: Arc<Mutex<HashMap<String, u32>>>,
    stats: Arc<Mutex<HttpStats>>,
    activity: Arc<Mutex<Option<ActivityFn>>>,
}

/// The most redirects one request follows.
pub const MAX_REDIRECTS: usize = 10;

/// Tells the activity hook that the client stopped waiting, however the
/// wait ends (answer, error, cancellation).
struct ActivityDone<'a>(&'a HttpClient);

impl Drop for ActivityDone<'_> {
    fn drop(&mut self) {
        self.0.report_activity(None);
    }
}

/// A duration for messages: `250 ms`, `30 s`.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// The TLS configuration every client of the process shares: the same as
/// reqwest's own default (rustls with aws-lc-rs, the platform's verifier
/// and roots, HTTP/2 and HTTP/1.1 by ALPN), built once. Per client it cost
/// about 110 KiB and a parse of every system root certificate, which
/// dominated a run's memory with a thousand runs at once. It also shares
/// the TLS session cache, so runs resume sessions with a provider.
///
/// `None` (and each client builds its own, as reqwest does) if it cannot
/// be built.
pub(crate) fn shared_tls() -> Option<&'static rustls::ClientConfig> {
    static TLS: std::sync::OnceLock<Option<rustls::ClientConfig>> = std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let verifier = match rustls_platform_verifier::Verifier::new(Arc::clone(&provider)) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "no shared TLS verifier; each client builds its own");
                return None;
            }
        };
        let builder = match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no shared TLS configuration");
                return None;
            }
        };
        let mut config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Some(config)
    })
    .as_ref()
}

impl HttpClient {
    /// Builds a client over a [`ReqwestTransport`] with `config`'s timeouts.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let transport = ReqwestTransport::new(TransportConfig {
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            read_timeout: config.read_timeout,
            ..TransportConfig::default()
        })?;
        Ok(Self::with_transport(config, Arc::new(transport)))
    }

    /// Builds a client over another transport (recording, replaying, a test
    /// double). Every policy applies the same; `config`'s timeouts are the
    /// transport's business.
    pub fn with_transport(config: HttpConfig, transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            jar: Arc::new(CookieStoreMutex::default()),
            allow: Arc::new(AllowList::new(&config.allowed_hosts)),
            config: Arc::new(config),
            per_host: Arc::default(),
            stats: Arc::default(),
            activity: Arc::default(),
        }
    }

    /// The transport requests go through.
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::clone(&self.transport)
    }

    /// Sets the hook told which request the client waits on (the runner
    /// feeds the run's progress display with it). Shared by every clone.
    pub fn set_activity(&self, hook: ActivityFn) {
        if let Ok(mut a) = self.activity.lock() {
            *a = Some(hook);
        }
    }

    fn report_activity(&self, activity: Option<&Activity>) {
        let hook = self.activity.lock().ok().and_then(|a| a.clone());
        if let Some(hook) = hook {
            hook(activity);
        }
    }

    /// The cookie jar, shared with every request of this client. The client
    /// applies it itself on every hop of a request: `Cookie` out, every
    /// `Set-Cookie` in (redirect responses included).
    pub fn cookie_jar(&self) -> &Arc<CookieStoreMutex> {
        &self.jar
    }

    /// The cookie jar as JSON (`cookie_store`'s format), session cookies
    /// included: what a login session saves. Every cookie value is
    /// registered with [`crate::redact`], so it never shows in a log.
    ///
    /// The text holds live session tokens: seal it (see
    /// [`crate::session`]), never log or store it as is.
    pub fn export_cookies(&self) -> Result<zeroize::Zeroizing<String>> {
        let jar = self.jar.lock().map_err(|_| {
            KonnectorError::new(ErrorCode::UnknownError, "the cookie jar is poisoned")
        })?;
        crate::redact::register_all(jar.iter_unexpired().map(|c| c.value()));
        let mut out = Vec::new();
        cookie_store::serde::json::save_incl_expired_and_nonpersistent(&jar, &mut out).map_err(
            |e| {
                KonnectorError::new(
                    ErrorCode::UnknownError,
                    format!("cannot export the cookie jar: {e}"),
                )
            },
        )?;
        String::from_utf8(out)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| {
                KonnectorError::new(ErrorCode::UnknownError, "the cookie jar is not UTF-8")
            })
    }

    /// Replaces the cookie jar's content with cookies exported by
    /// [`HttpClient::export_cookies`]; expired cookies are dropped. Their
    /// values are registered with [`crate::redact`].
    pub fn import_cookies(&self, json: &str) -> Result<()> {
        let loaded = cookie_store::serde::json::load_all(json.as_bytes()).map_err(|e| {
            KonnectorError::new(
                ErrorCode::UnknownError,
                format!("the saved cookie jar is malformed: {e}"),
            )
        })?;
        crate::redact::register_all(loaded.iter_unexpired().map(|c| c.value()));
        let mut jar = self.jar.lock().map_err(|_| {
            KonnectorError::new(ErrorCode::UnknownError, "the cookie jar is poisoned")
        })?;
        *jar = loaded;
        Ok(())
    }

    /// Empties the cookie jar (a dead session).
    pub fn clear_cookies(&self) {
        if let Ok(mut jar) = self.jar.lock() {
            jar.clear();
        }
    }

    /// What the client did so far.
    pub fn stats(&self) -> HttpStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body. Values
    /// may be secrets: they are never logged.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Response> {
        self.request(Method::POST, url).form(form).send().await
    }

    /// Sends a request with retries and returns the response read whole.
    ///
    /// 2xx, 3xx without a `Location` and 4xx other than 429 are returned for
    /// the konnector to judge; redirects are followed (at most
    /// [`MAX_REDIRECTS`], each checked against the endpoint policy and the
    /// allow-list). Network errors, 5xx and 429 are retried; when retries
    /// run out the error is `VENDOR_DOWN` naming the URL and the last
    /// status. POST and PATCH are retried only on 429, 503 and connection
    /// failures, where the server cannot have processed them.
    ///
    /// `form_body`, when given, is sent as
    /// `application/x-www-form-urlencoded`. Prefer [`HttpClient::request`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        form_body: Option<String>,
    ) -> Result<Response> {
        self.send_authorized(method, url, form_body, None).await
    }

    /// `GET url` with `Authorization: Bearer <token>`, for OAuth APIs (get
    /// the token with [`crate::RunContext::access_token`]). Same allow-list,
    /// budget and retries as [`HttpClient::send`]; the token is never logged.
    pub async fn get_bearer(&self, url: &str, token: &crate::secret::Secret) -> Result<Response> {
        self.request(Method::GET, url).bearer(token).send().await
    }

    /// [`HttpClient::send`] with an optional bearer token. Prefer
    /// [`HttpClient::request`].
    pub async fn send_authorized(
        &self,
        method: Method,
        url: &str,
        form_body: Option<String>,
        bearer: Option<&crate::secret::Secret>,
    ) -> Result<Response> {
        let mut req = self.request(method, url);
        if let Some(token) = bearer {
            req = req.bearer(token);
        }
        if let Some(body) = form_body {
            req = req.body(body, "application/x-www-form-urlencoded");
        }
        req.send().await
    }

    /// Sends a prepared request: the policies, then redirects and cookies
    /// hop by hop, each hop through the transport with retries.
    pub(crate) async fn execute(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response> {
        // Before the allow-list: a stored endpoint with another scheme
        // fails here once, not five times as VENDOR_DOWN.
        crate::endpoint::check_target(&url)?;
        if !self.allow.allows(&url) {
            return Err(KonnectorError::new(
                ErrorCode::HostNotAllowed,
                format!(
                    "refused a request to {}: the host is not in the konnector's manifest",
                    display_url(&url)
                ),
            ));
        }
        let original = url.clone();
        let refused = |why: String| {
            KonnectorError::new(
                ErrorCode::HostNotAllowed,
                format!("refused a redirect from {}: {why}", display_url(&original)),
            )
        };
        let mut hop = Hop {
            method,
            url,
            headers,
            body,
        };
        let mut followed = 0usize;
        loop {
            let mut headers = hop.headers.clone();
            self.add_cookies(&mut headers, &hop.url);
            let resp = self
                .exchange_with_retries(&hop.method, &hop.url, headers, hop.body.clone())
                .await?;
            self.store_cookies(&resp.headers, &resp.url);
            let Some(next) = redirect_target(resp.status, &resp.headers, &resp.url) else {
                return Ok(Response {
                    url: resp.url,
                    status: resp.status,
                    headers: resp.headers,
                    body: resp.body,
                });
            };
            if followed >= MAX_REDIRECTS {
                return Err(refused("too many redirects".to_owned()));
            }
            if let Err(e) = crate::endpoint::check_target(&next) {
                return Err(refused(e.message));
            }
            if !self.allow.allows(&next) {
                return Err(refused(format!(
                    "redirect to a host outside the manifest: {}",
                    display_url(&next)
                )));
            }
            followed += 1;
            tracing::debug!(from = %display_url(&resp.url), to = %display_url(&next),
                status = resp.status.as_u16(), "following a redirect");
            hop = hop.redirected(resp.status, &resp.url, next);
        }
    }

    fn add_cookies(&self, headers: &mut HeaderMap, url: &Url) {
        use reqwest::cookie::CookieStore as _;
        if let Some(mut value) = self.jar.cookies(url) {
            value.set_sensitive(true);
            headers.insert(COOKIE, value);
        }
    }

    fn store_cookies(&self, headers: &HeaderMap, url: &Url) {
        use reqwest::cookie::CookieStore as _;
        let mut set = headers.get_all(SET_COOKIE).iter().peekable();
        if set.peek().is_some() {
            self.jar.set_cookies(&mut set, url);
        }
    }

    /// One hop: the budget, the activity hook and retries around one
    /// exchange with the transport. Its `VENDOR_DOWN` errors name the
    /// provider as their source (`provider_down`).
    async fn exchange_with_retries(
        &self,
        method: &Method,
        url: &Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<TransportResponse> {
        let policy = &self.config.retry;
        let idempotent = *method != Method::POST && *method != Method::PATCH;
        let mut retry = 0u32;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        loop {
            self.take_budget(url)?;
            self.report_activity(Some(&Activity {
                host: host.clone(),
                request: format!("{method} {}", url.path()),
                attempt: retry + 1,
            }));
            let done = ActivityDone(self);
            let started = std::time::Instant::now();
            let sent = self
                .transport
                .exchange(TransportRequest {
                    method: method.clone(),
                    url: url.clone(),
                    headers: headers.clone(),
                    body: body.clone(),
                })
                .await;
            let not_retried = |cause: String| {
                provider_down(format!(
                    "{method} {cause}; not retried, since the server may have processed it"
                ))
            };
            let (cause, after) = match sent {
                Ok(resp) => {
                    let status = resp.status;
                    tracing::debug!(%method, url = %display_url(url), status = status.as_u16(),
                        elapsed_ms = started.elapsed().as_millis() as u64, "http");
                    // A POST is retried only when the server says it did not
                    // process it (429, 503): a login must not be replayed
                    // after a 500 that may have counted it as an attempt.
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE
                        || (idempotent && status.is_server_error());
                    if !retryable && status.is_server_error() {
                        return Err(provider_down(format!(
                            "{method} {} answered {status}; not retried, since the server may have processed it",
                            display_url(url)
                        )));
                    }
                    if !retryable {
                        return Ok(resp);
                    }
                    (
                        format!("{} answered {status}", display_url(url)),
                        retry_after(&resp.headers),
                    )
                }
                Err(TransportError::Rejected(e)) => return Err(e),
                Err(TransportError::RequestTimeout(t)) => {
                    let cause = format!(
                        "{} did not answer within {} (the request timeout)",
                        display_url(url),
                        human(t)
                    );
                    if !idempotent {
                        return Err(not_retried(cause));
                    }
                    (cause, None)
                }
                // A name that resolves only to refused addresses (link-local,
                // metadata): not retried, the answer will not change.
                Err(TransportError::RefusedResolution(why)) => {
                    return Err(KonnectorError::new(
                        ErrorCode::HostNotAllowed,
                        format!("refused a request to {}: {why}", display_url(url)),
                    ));
                }
                // A refused certificate does not heal in a second: no retry,
                // and a message that says what it is.
                Err(TransportError::Certificate(chain)) => {
                    return Err(provider_down(format!(
                        "the TLS certificate of {} was refused: {chain}",
                        display_url(url)
                    )));
                }
                Err(TransportError::ConnectTimeout(t)) => (
                    format!(
                        "{} timed out: no connection within {} (the connect timeout)",
                        display_url(url),
                        human(t)
                    ),
                    None,
                ),
                Err(TransportError::ReadTimeout { after, .. }) if idempotent => (
                    format!(
                        "{} timed out: no answer for {} (the read timeout)",
                        display_url(url),
                        human(after)
                    ),
                    None,
                ),
                Err(TransportError::Connect(chain)) => (
                    format!("could not reach {}: {chain}", display_url(url)),
                    None,
                ),
                Err(TransportError::Failed(chain)) if idempotent => (
                    format!("could not reach {}: {chain}", display_url(url)),
                    None,
                ),
                Err(
                    TransportError::Failed(detail) | TransportError::ReadTimeout { detail, .. },
                ) => {
                    return Err(provider_down(format!(
                        "{} {} failed and is not retried, since the server may have processed it: {}",
                        method,
                        display_url(url),
                        detail
                    )));
                }
                Err(e @ (TransportError::BodyTimeout(_) | TransportError::BodyCut(_))) => {
                    let cause = match e {
                        TransportError::BodyTimeout(t) => format!(
                            "the body from {} stopped coming for {} (the read timeout)",
                            display_url(url),
                            human(t)
                        ),
                        other => format!(
                            "the body from {} was cut off: {}",
                            display_url(url),
                            match other {
                                TransportError::BodyCut(d) => d,
                                _ => String::new(),
                            }
                        ),
                    };
                    if !idempotent {
                        return Err(provider_down(cause));
                    }
                    (cause, None)
                }
            };
            if retry >= policy.max_retries {
                return Err(provider_down(format!(
                    "{cause} (gave up after {} attempts)",
                    retry + 1
                )));
            }
            let wait = match after {
                Some(after) if after > policy.max_retry_after => {
                    return Err(provider_down(format!(
                        "{cause} and asked to come back in {} s, longer than the {} s a run waits",
                        after.as_secs(),
                        policy.max_retry_after.as_secs()
                    ))
                    .with_retry_after(after));
                }
                Some(after) => after,
                None => policy.backoff(retry),
            };
            tracing::info!(url = %display_url(url), wait_ms = wait.as_millis() as u64, retry = retry + 1, %cause, "retrying");
            if let Ok(mut stats) = self.stats.lock() {
                stats.retries += 1;
                stats.waits.push(wait);
            }
            drop(done);
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    fn take_budget(&self, url: &Url) -> Result<()> {
        let host = url.host_str().unwrap_or("").to_owned();
        let mut per_host = self.per_host.lock().map_err(|_| {
            KonnectorError::new(ErrorCode::UnknownError, "the request counter is poisoned")
        })?;
        let used = per_host.entry(host.clone()).or_insert(0);
        if *used >= self.config.request_budget {
            return Err(KonnectorError::new(
                ErrorCode::RequestBudgetExceeded,
                format!(
                    "the run sent {} requests to {host}, its budget; is a pagination loop stuck?",
                    self.config.request_budget
                ),
            ));
        }
        *used += 1;
        if let Ok(mut stats) = self.stats.lock() {
            stats.requests += 1;
        }
        Ok(())
    }
}

/// One hop of a request: what is sent to one URL.
struct Hop {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Bytes,
}

impl Hop {
    /// The next hop after a redirect from `from` to `next`, as browsers (and
    /// reqwest) do it: 301 and 302 turn a POST into a GET, 303 turns all but
    /// HEAD into a GET (dropping the body), 307 and 308 keep both;
    /// credentials are dropped when the origin changes; `Referer` names the
    /// previous page unless that would downgrade https to http.
    fn redirected(self, status: StatusCode, from: &Url, next: Url) -> Hop {
        let Hop {
            mut method,
            mut headers,
            mut body,
            ..
        } = self;
        let to_get = match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => method == Method::POST,
            StatusCode::SEE_OTHER => method != Method::HEAD,
            _ => false,
        };
        if to_get {
            if method != Method::HEAD {
                method = Method::GET;
            }
            body = Bytes::new();
            for h in [
                CONTENT_TYPE,
                CONTENT_LENGTH,
                CONTENT_ENCODING,
                TRANSFER_ENCODING,
            ] {
                headers.remove(h);
            }
        }
        let cross_origin = next.host_str() != from.host_str()
            || next.port_or_known_default() != from.port_or_known_default()
            || next.scheme() != from.scheme();
        if cross_origin {
            for h in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                headers.remove(h);
            }
            headers.remove("cookie2");
        }
        headers.remove(REFERER);
        if !(next.scheme() == "http" && from.scheme() == "https") {
            let mut referer = from.clone();
            let _ = referer.set_username("");
            let _ = referer.set_password(None);
            referer.set_fragment(None);
            if let Ok(v) = HeaderValue::from_str(referer.as_str()) {
                headers.insert(REFERER, v);
            }
        }
        Hop {
            method,
            url: next,
            headers,
            body,
        }
    }
}

/// Where a response redirects to, if it is a redirect with a usable
/// `Location` (others are returned as they are).
fn redirect_target(status: StatusCode, headers: &HeaderMap, from: &Url) -> Option<Url> {
    if !matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    ) {
        return None;
    }
    let location = headers.get(LOCATION)?.to_str().ok()?;
    from.join(location).ok()
}

/// Parses `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The causes of an error, joined by `: `, without its own message:
/// reqwest's Display includes the URL (with its query), so only the causes
/// are printed.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        "request failed".to_owned()
    } else {
        parts.join(": ")
    }
}

/// A URL for messages: scheme, host, port and path, never the query string
/// or the fragment (they can carry tokens).
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// Like [`display_url`] for a string that may not parse.
pub fn strip_query(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => display_url(&u),
        Err(_) => url.split(['?', '#']).next().unwrap_or("").to_owned(),
    }
}

/// `VENDOR_DOWN` with the provider as its source: the provider (or the
/// network on the way to it) failed an exchange.
fn provider_down(message: String) -> KonnectorError {
    KonnectorError::vendor_down(message).with_source(ErrorSource::new(SourceKind::Provider))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_host_and_optional_port() {
        let allow = AllowList::new(&["mobile.free.fr".into(), "127.0.0.1:8080".into()]);
        assert!(allow.allows(&Url::parse("https://mobile.free.fr/account/").unwrap()));
        assert!(allow.allows(&Url::parse("https://MOBILE.free.fr/").unwrap()));
        assert!(!allow.allows(&Url::parse("https://evil.example/").unwrap()));
        assert!(!allow.allows(&Url::parse("https://free.fr.evil.example/").unwrap()));
        assert!(allow.allows(&Url::parse("http://127.0.0.1:8080/x").unwrap()));
        assert!(!allow.allows(&Url::parse("http://127.0.0.1:8081/x").unwrap()));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(5),
        };
        for retry in 0..8 {
            let full = (100u64 << retry).min(1000);
            let d = p.backoff(retry).as_millis() as u64;
            assert!(
                d >= full / 2 && d <= full,
                "retry {retry}: {d} not in [{}, {full}]",
                full / 2
            );
        }
    }

    #[test]
    fn urls_in_messages_lose_their_secrets() {
        let u = Url::parse("https://user:pw@bank.example/a?token=abc#frag").unwrap();
        assert_eq!(display_url(&u), "https://bank.example/a");
        assert_eq!(strip_query("not a url?token=abc"), "not a url");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
