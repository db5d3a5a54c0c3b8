//! Offline sandbox of Enedis Data Connect: consent page, OAuth2 token
//! endpoint and the daily consumption API, on `127.0.0.1`, in one axum
//! server.
//!
//! It follows Enedis' published API descriptions (see `shared/specs/`):
//! - `GET /dataconnect/v1/oauth2/authorize`: needs `client_id`,
//!   `response_type=code`, `duration` (and here a loopback `redirect_uri` and
//!   a PKCE S256 `code_challenge`); the consent is approved at once (or
//!   refused, see [`Sandbox::set_deny_consent`]) and the browser is sent to
//!   `redirect_uri?code=..&state=..&usage_point_id=..`. Missing parameters
//!   get the spec's 400 `{error, error_description}`.
//! - `POST /oauth2/v3/token`: client authentication by HTTP Basic or form
//!   fields; grants `authorization_code` (single-use code, same
//!   `redirect_uri`, PKCE verified), `refresh_token` (single use: every
//!   refresh returns a new refresh token and kills the old one) and
//!   `client_credentials`. `expires_in` is a string, as in the spec.
//!   Errors are RFC 6749's `invalid_grant`, `invalid_client`,
//!   `unsupported_grant_type`, `invalid_request`.
//! - `GET /metering_data_dc/v5/daily_consumption`: bearer token (401 when
//!   missing, unknown or expired), `usage_point_id` of 14 digits, `start` and
//!   `end` dates, end not after today; answers `meter_reading` with
//!   `interval_reading[{value, date}]` in Wh, values from
//!   `fixtures/enedis/daily_wh.json`. A usage point without consent gets the
//!   spec's 403 `ADAM_DC_0008`; [`Sandbox::set_rate_limited`] makes the next
//!   calls answer 429 with `Retry-After`.
//!
//! Time comes from an injected [`Clock`], so tests expire tokens without
//! sleeping. Counters tell tests how many token requests were made.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use gleaner_framework::oauth::{Clock, SystemClock};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The client id the sandbox knows (the manifest's).
pub const CLIENT_ID: &str = "gleaner-dataconnect";

/// The client secret the sandbox accepts.
pub const CLIENT_SECRET: &str = "sandbox-client-secret";

/// The usage point (PRM) the demo customer consents to.
pub const USAGE_POINT_ID: &str = "16401220101758";

/// Access token lifetime, as in the spec's example (3 h 30).
pub const ACCESS_TOKEN_LIFETIME: i64 = 12600;

/// How long an authorization code stays valid.
const CODE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

/// Added to token answers, so that concurrent refreshes would overlap.
const TOKEN_LATENCY: Duration = Duration::from_millis(20);

const DAILY_WH: &str = include_str!("../../../../fixtures/enedis/daily_wh.json");

struct CodeGrant {
    redirect_uri: String,
    challenge: String,
    expires_at: DateTime<Utc>,
}

struct AccessGrant {
    expires_at: DateTime<Utc>,
    usage_point: Option<String>,
}

struct Inner {
    /// The client secret the token endpoint takes (default [`CLIENT_SECRET`]).
    client_secret: Mutex<String>,
    clock: Arc<dyn Clock>,
    lifetime: Mutex<i64>,
    codes: Mutex<HashMap<String, CodeGrant>>,
    refresh: Mutex<HashMap<String, bool>>,
    access: Mutex<HashMap<String, AccessGrant>>,
    daily: Vec<u64>,
    deny_consent: AtomicBool,
    rate_limited: AtomicUsize,
    token_requests: AtomicUsize,
    refresh_requests: AtomicUsize,
    api_requests: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running sandbox; dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    inner: Arc<Inner>,
    _shutdown: oneshot::Sender<()>,
}

impl Sandbox {
    /// Starts the sandbox on the system clock.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with_clock(Arc::new(SystemClock)).await
    }

    /// Starts the sandbox on `clock`.
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        let daily: Value = serde_json::from_str(DAILY_WH).map_err(std::io::Error::other)?;
        let daily = daily["wh_by_day_of_year"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<_>>())
            .filter(|v| v.len() == 366)
            .ok_or_else(|| std::io::Error::other("daily_wh.json needs 366 values"))?;
        let inner = Arc::new(Inner {
            client_secret: Mutex::new(CLIENT_SECRET.to_owned()),
            clock,
            lifetime: Mutex::new(ACCESS_TOKEN_LIFETIME),
            codes: Mutex::default(),
            refresh: Mutex::default(),
            access: Mutex::default(),
            daily,
            deny_consent: AtomicBool::new(false),
            rate_limited: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            refresh_requests: AtomicUsize::new(0),
            api_requests: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/dataconnect/v1/oauth2/authorize", get(authorize))
            .route("/oauth2/v3/token", post(token))
            .route(
                "/metering_data_dc/v5/daily_consumption",
                get(daily_consumption),
            )
            .with_state(Arc::clone(&inner));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            inner,
            _shutdown: shutdown,
        })
    }

    /// `http://127.0.0.1:<port>`: the account's endpoint.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the lifetime of access tokens issued from now on, in seconds.
    pub fn set_access_token_lifetime(&self, secs: i64) {
        *lock(&self.inner.lifetime) = secs;
    }

    /// Makes the consent page refuse (`error=access_denied`).
    pub fn set_deny_consent(&self, deny: bool) {
        self.inner.deny_consent.store(deny, Ordering::SeqCst);
    }

    /// Changes the client secret the token endpoint takes (default
    /// [`CLIENT_SECRET`]), so tests can use unusual values.
    pub fn set_client_secret(&self, secret: &str) {
        *self
            .inner
            .client_secret
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = secret.to_owned();
    }

    /// The next `n` API calls answer 429.
    pub fn set_rate_limited(&self, n: usize) {
        self.inner.rate_limited.store(n, Ordering::SeqCst);
    }

    /// The customer withdraws consent: every refresh and access token dies.
    pub fn revoke_consent(&self) {
        lock(&self.inner.refresh)
            .values_mut()
            .for_each(|a| *a = false);
        lock(&self.inner.access).clear();
    }

    /// Access tokens die before their expiry; refresh tokens stay good.
    pub fn revoke_access_tokens(&self) {
        lock(&self.inner.access).clear();
    }

    /// Token endpoint calls, all grants.
    pub fn token_requests(&self) -> usize {
        self.inner.token_requests.load(Ordering::SeqCst)
    }

    /// Token endpoint calls with `grant_type=refresh_token`.
    pub fn refresh_requests(&self) -> usize {
        self.inner.refresh_requests.load(Ordering::SeqCst)
    }

    /// Metering API calls.
    pub fn api_requests(&self) -> usize {
        self.inner.api_requests.load(Ordering::SeqCst)
    }

    /// Whether a refresh token would be accepted now.
    pub fn refresh_token_is_live(&self, token: &str) -> bool {
        lock(&self.inner.refresh)
            .get(token)
            .copied()
            .unwrap_or(false)
    }

    /// Every token issued so far (to check none leaks into logs or files).
    pub fn issued_tokens(&self) -> Vec<String> {
        let mut out: Vec<String> = lock(&self.inner.refresh).keys().cloned().collect();
        out.extend(lock(&self.inner.access).keys().cloned());
        out
    }
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn is_loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http" && u.host_str() == Some("127.0.0.1") && u.port().is_some()
    })
}

async fn authorize(
    State(s): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let bad = |d: &str| error(StatusCode::BAD_REQUEST, "Invalid_request", d);
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad("Response type parameter is required");
    }
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Unknown client_id",
        );
    }
    if q.get("duration").is_none_or(|d| !d.starts_with('P')) {
        return bad("Duration parameter is required");
    }
    let Some(redirect) = q.get("redirect_uri").filter(|r| is_loopback_redirect(r)) else {
        return bad("redirect_uri must be a registered loopback URI");
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return bad("code_challenge_method must be S256");
    }
    let Some(challenge) = q.get("code_challenge").filter(|c| c.len() >= 43) else {
        return bad("code_challenge is required");
    };
    let mut target = match url::Url::parse(redirect) {
        Ok(u) => u,
        Err(_) => return bad("redirect_uri is not a URL"),
    };
    {
        let mut pairs = target.query_pairs_mut();
        if s.deny_consent.load(Ordering::SeqCst) {
            pairs.append_pair("error", "access_denied");
            pairs.append_pair("error_description", "The customer refused the consent");
        } else {
            let code = new_token();
            lock(&s.codes).insert(
                code.clone(),
                CodeGrant {
                    redirect_uri: redirect.clone(),
                    challenge: challenge.clone(),
                    expires_at: s.clock.now() + CODE_LIFETIME,
                },
            );
            pairs.append_pair("code", &code);
            pairs.append_pair("usage_point_id", USAGE_POINT_ID);
        }
        if let Some(state) = q.get("state") {
            pairs.append_pair("state", state);
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(target.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

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

async fn token(State(s): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    tokio::time::sleep(TOKEN_LATENCY).await;
    s.token_requests.fetch_add(1, Ordering::SeqCst);
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

async fn daily_consumption(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.api_requests.fetch_add(1, Ordering::SeqCst);
    if s.rate_limited
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let mut resp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Quota exceeded, retry later",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    let now = s.clock.now();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let grant_point = match token.and_then(|t| {
        lock(&s.access)
            .get(t)
            .map(|g| (g.expires_at, g.usage_point.clone()))
    }) {
        Some((expires_at, point)) if expires_at > now => point,
        _ => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is missing, invalid or expired",
            );
        }
    };
    let bad = |d: &str| error(StatusCode::BAD_REQUEST, "Invalid_request", d);
    let Some(point) = q.get("usage_point_id") else {
        return bad("usage_point_id parameter is required");
    };
    if point.len() != 14 || !point.chars().all(|c| c.is_ascii_digit()) {
        return bad("usage_point_id parameter must be 14 digits long");
    }
    let date = |k: &str, missing: &'static str, format: &'static str| {
        let v = q.get(k).ok_or(missing)?;
        NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format)
    };
    let start = match date(
        "start",
        "Start date parameter is required",
        "Start date parameter must be in the format YYYY-MM-DD",
    ) {
        Ok(d) => d,
        Err(m) => return bad(m),
    };
    let end = match date(
        "end",
        "End date parameter is required",
        "End date parameter must be in the format YYYY-MM-DD",
    ) {
        Ok(d) => d,
        Err(m) => return bad(m),
    };
    if end > now.date_naive() {
        return bad("The end date parameter must be earlier than the current date");
    }
    if start >= end {
        return bad("Start date should be before end date");
    }
    if grant_point.as_deref().is_some_and(|p| p != point) || point != USAGE_POINT_ID {
        return error(
            StatusCode::FORBIDDEN,
            "ADAM_DC_0008",
            "No consent can be found for this customer and this usage point.",
        );
    }
    let readings: Vec<Value> = start
        .iter_days()
        .take_while(|d| *d < end)
        .map(|d| {
            let wh = s.daily[(d.ordinal0() as usize).min(365)];
            json!({"value": wh.to_string(), "date": d.format("%Y-%m-%d").to_string()})
        })
        .collect();
    let body = json!({"meter_reading": {
        "usage_point_id": point,
        "start": start.format("%Y-%m-%d").to_string(),
        "end": end.format("%Y-%m-%d").to_string(),
        "quality": "BRUT",
        "reading_type": {"measurement_kind": "energy", "measuring_period": "P1D", "unit": "Wh", "aggregate": "sum"},
        "interval_reading": readings,
    }});
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
