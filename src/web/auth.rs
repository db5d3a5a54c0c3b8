//! Who may use the web interface: the one-time login link printed by
//! `gleaner serve`, an optional passphrase, the sessions they open, and the
//! rate limit on login attempts.
//!
//! Sessions live in this process's memory only: a restart logs everyone
//! out, and the new start prints a new link. A session's id reaches the
//! browser once, in an `HttpOnly; SameSite=Strict` cookie; the server keeps
//! only its SHA-256.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use gleaner_framework::Secret;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::render::{self, WebError};
use super::security::CsrfForm;
use super::state::WebState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gleaner_session";
/// The login form's double-submit cookie (CSRF before there is a session).
const LOGIN_COOKIE: &str = "gleaner_login";
/// A session unused this long ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// At most this many failed logins per window, whoever sends them.
const MAX_FAILURES: usize = 10;
/// The window of the login rate limit.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a message about the last action stays on the pages: the
/// account page reloads itself when its run moves on, and the message must
/// not vanish with the first reload.
const FLASH_LIFETIME: Duration = Duration::from_secs(15);

/// A logged-in browser, as handlers see it.
#[derive(Clone)]
pub struct Session {
    /// The SHA-256 of the session id (hex): the key of the session table.
    pub key: String,
    /// The token every form of this session carries.
    pub csrf: String,
}

struct SessionData {
    csrf: String,
    last_seen: Instant,
    flash: Option<(String, Instant)>,
}

/// The login and session authority of one `gleaner serve`.
pub struct Auth {
    one_time: Mutex<Option<[u8; 32]>>,
    passphrase: Option<[u8; 32]>,
    sessions: Mutex<HashMap<String, SessionData>>,
    failures: Mutex<VecDeque<Instant>>,
    secure_cookies: bool,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A lock that survives a panicked holder (the tables stay usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads one cookie from a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Why a login was refused.
enum Refused {
    /// The token or passphrase is wrong (or the link was used already).
    Wrong,
    /// Too many failures lately.
    RateLimited,
}

impl Auth {
    /// An authority with no session yet; `passphrase` also logs in.
    pub fn new(passphrase: Option<Secret>, secure_cookies: bool) -> Self {
        Self {
            one_time: Mutex::new(None),
            passphrase: passphrase.map(|p| digest(p.expose())),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(VecDeque::new()),
            secure_cookies,
        }
    }

    /// Mints the one-time login token (replacing an unused one) and returns
    /// it, to be printed on the terminal that started the server.
    pub fn one_time_token(&self) -> String {
        let token = random_hex();
        *lock(&self.one_time) = Some(digest(&token));
        token
    }

    /// Whether a passphrase can log in.
    pub fn has_passphrase(&self) -> bool {
        self.passphrase.is_some()
    }

    fn rate_limited(&self) -> bool {
        let mut failures = lock(&self.failures);
        let now = Instant::now();
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW)
        {
            failures.pop_front();
        }
        failures.len() >= MAX_FAILURES
    }

    fn failed(&self) {
        lock(&self.failures).push_back(Instant::now());
    }

    /// Spends the one-time token: a session id, or why not.
    fn login_with_token(&self, token: &str) -> Result<String, Refused> {
        if self.rate_limited() {
            return Err(Refused::RateLimited);
        }
        let given = digest(token);
        let mut slot = lock(&self.one_time);
        let ok = slot
            .as_ref()
            .is_some_and(|expected| bool::from(expected.ct_eq(&given)));
        if !ok {
            drop(slot);
            self.failed();
            return Err(Refused::Wrong);
        }
        *slot = None;
        drop(slot);
        Ok(self.open_session())
    }

    fn login_with_passphrase(&self, given: &str) -> Result<String, Refused> {
        if self.rate_limited() {
            return Err(Refused::RateLimited);
        }
        let ok = self
            .passphrase
            .as_ref()
            .is_some_and(|expected| bool::from(expected.ct_eq(&digest(given))));
        if !ok {
            self.failed();
            return Err(Refused::Wrong);
        }
        Ok(self.open_session())
    }

    fn open_session(&self) -> String {
        let id = random_hex();
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < IDLE_TIMEOUT);
        sessions.insert(
            hex::encode(digest(&id)),
            SessionData {
                csrf: random_hex(),
                last_seen: now,
                flash: None,
            },
        );
        id
    }

    /// The session a request's cookie names, if it is alive (its idle
    /// clock restarts).
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let key = hex::encode(digest(id));
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        let data = sessions.get_mut(&key)?;
        if now.duration_since(data.last_seen) >= IDLE_TIMEOUT {
            sessions.remove(&key);
            return None;
        }
        data.last_seen = now;
        Some(Session {
            key,
            csrf: data.csrf.clone(),
        })
    }

    /// Ends a session.
    pub fn logout(&self, session: &Session) {
        lock(&self.sessions).remove(&session.key);
    }

    /// Leaves a message for the session's next pages ("account enabled"),
    /// shown for [`FLASH_LIFETIME`].
    pub fn set_flash(&self, session: &Session, message: impl Into<String>) {
        if let Some(data) = lock(&self.sessions).get_mut(&session.key) {
            data.flash = Some((message.into(), Instant::now()));
        }
    }

    /// The session's message about its last action, while it is recent.
    pub fn take_flash(&self, session: &Session) -> Option<String> {
        let mut sessions = lock(&self.sessions);
        let data = sessions.get_mut(&session.key)?;
        match &data.flash {
            Some((message, at)) if at.elapsed() < FLASH_LIFETIME => Some(message.clone()),
            _ => {
                data.flash = None;
                None
            }
        }
    }

    fn cookie_attributes(&self) -> &'static str {
        if self.secure_cookies {
            "Path=/; HttpOnly; SameSite=Strict; Secure"
        } else {
            "Path=/; HttpOnly; SameSite=Strict"
        }
    }

    /// The `Set-Cookie` value that opens a session in the browser.
    fn session_cookie(&self, id: &str) -> String {
        format!("{SESSION_COOKIE}={id}; {}", self.cookie_attributes())
    }
}

/// The login routes (reachable without a session).
pub fn routes() -> Router<Arc<WebState>> {
    Router::new().route("/login", get(login_page).post(login_with_passphrase))
}

/// The logout route (behind the session wall, like every POST with a CSRF
/// token).
pub fn session_routes() -> Router<Arc<WebState>> {
    Router::new().route("/logout", post(logout))
}

#[derive(Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// `GET /login`: with `?token=`, spends the one-time link; without, shows
/// the login page.
async fn login_page(
    State(state): State<Arc<WebState>>,
    Query(query): Query<LinkQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = query.token else {
        if state.auth.session(&headers).is_some() {
            return Redirect::to("/").into_response();
        }
        return render::login_page(&state, StatusCode::OK, None);
    };
    match state.auth.login_with_token(&token) {
        Ok(id) => logged_in(&state, &id),
        Err(Refused::RateLimited) => too_many(&state),
        Err(Refused::Wrong) => render::login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some(
                "This login link is not valid: it was used already, or a newer start of `gleaner serve` printed another one.",
            ),
        ),
    }
}

#[derive(Deserialize)]
struct PassphraseForm {
    passphrase: String,
    login_csrf: String,
}

/// `POST /login`: the passphrase form, checked against its double-submit
/// cookie.
async fn login_with_passphrase(
    State(state): State<Arc<WebState>>,
    headers: HeaderMap,
    Form(form): Form<PassphraseForm>,
) -> Response {
    let cookie_token = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if cookie_token.is_empty()
        || !bool::from(cookie_token.as_bytes().ct_eq(form.login_csrf.as_bytes()))
    {
        return WebError::Forbidden(
            "the login form expired or came from another page; load it again".into(),
        )
        .into_response();
    }
    if !state.auth.has_passphrase() {
        return render::login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("This server has no passphrase: log in with the link `gleaner serve` printed."),
        );
    }
    match state.auth.login_with_passphrase(&form.passphrase) {
        Ok(id) => logged_in(&state, &id),
        Err(Refused::RateLimited) => too_many(&state),
        Err(Refused::Wrong) => {
            render::login_page(&state, StatusCode::UNAUTHORIZED, Some("Wrong passphrase."))
        }
    }
}

/// The login form's double-submit token, set as a cookie by the login page.
pub fn login_form_token(state: &WebState) -> (String, HeaderValue) {
    let token = random_hex();
    let value = format!("{LOGIN_COOKIE}={token}; {}", state.auth.cookie_attributes());
    let header = HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static(""));
    (token, header)
}

fn logged_in(state: &WebState, id: &str) -> Response {
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&state.auth.session_cookie(id)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn too_many(state: &WebState) -> Response {
    let mut response = render::login_page(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        Some("Too many failed logins: wait a minute, then try again."),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

/// `POST /logout`
async fn logout(State(state): State<Arc<WebState>>, form: CsrfForm) -> Response {
    state.auth.logout(&form.session);
    let mut response = Redirect::to("/login").into_response();
    let expired = format!(
        "{SESSION_COOKIE}=; Max-Age=0; {}",
        state.auth.cookie_attributes()
    );
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
