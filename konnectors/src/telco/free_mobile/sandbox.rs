//! Offline sandbox of the Free Mobile customer area.
//!
//! [`Sandbox`] is a small HTTP/1.1 server bound to `127.0.0.1` that behaves
//! like the classic HTML version of `https://mobile.free.fr/account/`: login
//! form, `PHPSESSID` session cookie, multi-line accounts with
//! `?switch-user=<id>`, invoice PDFs under `/account/conso-et-factures`, and
//! `?logout`. It serves the hand-written pages and PDFs of
//! `fixtures/free-mobile/`, embedded at compile time so the binary works from
//! any directory.
//!
//! The account accepts [`LOGIN`] / [`PASSWORD`]. It has two lines,
//! `12345678` ("06 12 34 56 78", 12 monthly invoices and 2 multi-line
//! summaries) and `87654321` ("07 98 76 54 32", 6 monthly invoices).
//!
//! [`LOGIN_2FA`] (same password, same lines) has **new-device
//! verification** on: after a correct password, a browser that shows no
//! trusted-device cookie gets a verification page ("Un code de vérification
//! a été envoyé à j***@example.org", form `otp` + hidden `otp-token`, posted
//! to `/account/verification`) and a 6-digit code is "emailed": it lands in
//! the sandbox's outbox ([`Sandbox::outbox`], [`Sandbox::last_email_code`],
//! and `GET /__sandbox/outbox` as JSON, loopback clients only). The code
//! stays valid for 10 minutes and 5 tries; a wrong code shows the page again
//! with an error, the 5th wrong one a lockout page (30 minutes). The right
//! code logs the session in and, when `otp-trust=1` is posted (the box is
//! ticked by default), sets a `fm_trusted_device` cookie: later logins that
//! send it are not asked again. Time for expiry and lockout is the
//! sandbox's own clock, which tests move with [`Sandbox::advance_clock`].
//!
//! A [`Scenario`] selects a failure mode (maintenance page, redesigned markup,
//! 503, truncated PDFs, rate limiting); it can be changed while the server
//! runs with [`Sandbox::set_scenario`]. Counters ([`Sandbox::requests`],
//! [`Sandbox::login_posts`], ...) let tests check how a konnector behaved.
//!
//! Every response is delayed a little (a few milliseconds, more for PDFs) so
//! that concurrent requests really overlap and
//! [`Sandbox::max_concurrent_sessions`] is meaningful.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Demo customer id (`login-ident`) the sandbox accepts.
pub const LOGIN: &str = "12345678";

/// Demo password (`login-pwd`) the sandbox accepts.
pub const PASSWORD: &str = "sandbox-password";

/// A second customer id, with the same password and lines as [`LOGIN`],
/// whose account has new-device verification (a code sent by email) on.
pub const LOGIN_2FA: &str = "24681357";

/// The email address verification codes of [`LOGIN_2FA`] go to.
pub const EMAIL_TO: &str = "jeanne.martin@example.org";

/// [`EMAIL_TO`] as the verification page shows it.
pub const EMAIL_HINT: &str = "j***@example.org";

/// The loopback-only debug endpoint listing the emails sent (JSON).
pub const OUTBOX_PATH: &str = "/__sandbox/outbox";

/// How long a verification code is accepted after it was sent.
pub const CODE_VALIDITY: Duration = Duration::from_secs(10 * 60);

/// Wrong codes after which verification is locked ([`LOCKOUT`]).
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// How long verification stays locked after [`MAX_CODE_ATTEMPTS`] wrong codes.
pub const LOCKOUT: Duration = Duration::from_secs(30 * 60);

/// Name of the cookie that marks a device as trusted.
pub const TRUSTED_DEVICE_COOKIE: &str = "fm_trusted_device";

/// How long a trusted device is remembered (`Max-Age`, 30 days).
const TRUSTED_DEVICE_MAX_AGE: u64 = 30 * 24 * 3600;

/// Consecutive failed logins after which an identifier is blocked until the
/// sandbox restarts (the 6th attempt and later get the "blocked" page).
const MAX_FAILED_LOGINS: u32 = 5;

/// Delay added to every HTML (or error) response.
const PAGE_LATENCY: Duration = Duration::from_millis(2);

/// Delay added to every response of the PDF route.
const PDF_LATENCY: Duration = Duration::from_millis(15);

/// How long an idle session lives server-side unless
/// [`Sandbox::set_session_ttl`] says otherwise (30 min, like the site).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 60);

/// How long [`Sandbox::shutdown`] waits for open connections before aborting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Name of the session cookie, as PHP sets it.
const SESSION_COOKIE: &str = "PHPSESSID";

/// Value of the `Server` header.
const SERVER: &str = "nginx";

const LOGIN_HTML: &str = include_str!("../../../../fixtures/free-mobile/login.html");
const LOGIN_FAILED_HTML: &str = include_str!("../../../../fixtures/free-mobile/login_failed.html");
const LOGIN_BLOCKED_HTML: &str =
    include_str!("../../../../fixtures/free-mobile/login_blocked.html");
const MAINTENANCE_HTML: &str = include_str!("../../../../fixtures/free-mobile/maintenance.html");
const HOME_LINE1_HTML: &str = include_str!("../../../../fixtures/free-mobile/home_line1.html");
const HOME_LINE2_HTML: &str = include_str!("../../../../fixtures/free-mobile/home_line2.html");
const HOME_CHANGED_HTML: &str = include_str!("../../../../fixtures/free-mobile/home_changed.html");
const NOT_FOUND_HTML: &str = include_str!("../../../../fixtures/free-mobile/not_found.html");
const VERIFICATION_HTML: &str = include_str!("../../../../fixtures/free-mobile/verification.html");
const VERIFICATION_WRONG_HTML: &str =
    include_str!("../../../../fixtures/free-mobile/verification_wrong.html");
const VERIFICATION_LOCKED_HTML: &str =
    include_str!("../../../../fixtures/free-mobile/verification_locked.html");
const LOGIN_CODE_EXPIRED_HTML: &str =
    include_str!("../../../../fixtures/free-mobile/login_code_expired.html");

const UNAVAILABLE_HTML: &str = "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request. Please try again later.</p></body></html>\n";
const TOO_MANY_HTML: &str = "<!DOCTYPE html>\n<html><head><title>429 Too Many Requests</title></head>\n<body><h1>Too Many Requests</h1><p>Trop de requêtes, veuillez réessayer dans quelques instants.</p></body></html>\n";
const BAD_REQUEST_HTML: &str = "<!DOCTYPE html>\n<html><head><title>400 Bad Request</title></head>\n<body><h1>Bad Request</h1></body></html>\n";
const METHOD_NOT_ALLOWED_HTML: &str = "<!DOCTYPE html>\n<html><head><title>405 Not Allowed</title></head>\n<body><h1>405 Not Allowed</h1></body></html>\n";
const INTERNAL_ERROR_HTML: &str = "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n<body><h1>Internal Server Error</h1></body></html>\n";

/// The account's lines: (switch-user id, home page when that line is current).
/// The first one is current right after login.
const LINES: [(&str, &str); 2] = [("12345678", HOME_LINE1_HTML), ("87654321", HOME_LINE2_HTML)];

/// One downloadable invoice of the account.
struct PdfFixture {
    /// The `id=` query parameter (16 lowercase hex characters).
    id: &'static str,
    /// The `facture=` query parameter: `pdf` or `pdfrecap`.
    facture: &'static str,
    /// The `l=` query parameter: the line the invoice is listed under.
    line: &'static str,
    /// The file itself.
    bytes: &'static [u8],
}

const fn pdf(
    id: &'static str,
    facture: &'static str,
    line: &'static str,
    bytes: &'static [u8],
) -> PdfFixture {
    PdfFixture {
        id,
        facture,
        line,
        bytes,
    }
}

/// Every invoice of the account (generated by `fixtures/free-mobile/make_pdfs.py`).
const PDFS: [PdfFixture; 20] = [
    // Line 1, as listed on its home page (summaries first within their month).
    pdf(
        "f1b11cd16cc3fb53",
        "pdfrecap",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/f1b11cd16cc3fb53.pdf"),
    ),
    pdf(
        "bf084f2f231923b7",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/bf084f2f231923b7.pdf"),
    ),
    pdf(
        "2c132f44abe78c3b",
        "pdfrecap",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/2c132f44abe78c3b.pdf"),
    ),
    pdf(
        "4c4f4a58ff62b97c",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/4c4f4a58ff62b97c.pdf"),
    ),
    pdf(
        "cecbaf341835e3c9",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/cecbaf341835e3c9.pdf"),
    ),
    pdf(
        "058b2e7a796d4cbc",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/058b2e7a796d4cbc.pdf"),
    ),
    pdf(
        "4f1982cc5e262cda",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/4f1982cc5e262cda.pdf"),
    ),
    pdf(
        "06bd4d5809c20f3f",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/06bd4d5809c20f3f.pdf"),
    ),
    pdf(
        "5463a770e209789e",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/5463a770e209789e.pdf"),
    ),
    pdf(
        "cb47636ee8850251",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/cb47636ee8850251.pdf"),
    ),
    pdf(
        "848cee47943eab13",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/848cee47943eab13.pdf"),
    ),
    pdf(
        "dcd29ee6c0bdd3ef",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/dcd29ee6c0bdd3ef.pdf"),
    ),
    pdf(
        "af4c4d5a3b5b90f4",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/af4c4d5a3b5b90f4.pdf"),
    ),
    pdf(
        "4c1605c3c82f9e90",
        "pdf",
        "12345678",
        include_bytes!("../../../../fixtures/free-mobile/pdf/4c1605c3c82f9e90.pdf"),
    ),
    // Line 2.
    pdf(
        "22545d64520e45b9",
        "pdf",
        "87654321",
        include_bytes!("../../../../fixtures/free-mobile/pdf/22545d64520e45b9.pdf"),
    ),
    pdf(
        "5a5c0b890fa20f40",
        "pdf",
        "87654321",
        include_bytes!("../../../../fixtures/free-mobile/pdf/5a5c0b890fa20f40.pdf"),
    ),
    pdf(
        "14ed7c8f6dc4e037",
        "pdf",
        "87654321",
        include_bytes!("../../../../fixtures/free-mobile/pdf/14ed7c8f6dc4e037.pdf"),
    ),
    pdf(
        "a6f5f50006855371",
        "pdf",
        "87654321",
        include_bytes!("../../../../fixtures/free-mobile/pdf/a6f5f50006855371.pdf"),
    ),
    pdf(
        "5856f7a17e37f839",
        "pdf",
        "87654321",
        include_bytes!("../../../../fixtures/free-mobile/pdf/5856f7a17e37f839.pdf"),
    ),
    pdf(
        "fb73029cd1b1c1f4",
        "pdf",
        "87654321",
        include_bytes!("../../../../fixtures/free-mobile/pdf/fb73029cd1b1c1f4.pdf"),
    ),
];

/// How the sandbox behaves; see [`Sandbox::set_scenario`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scenario {
    /// The site works like the real one.
    #[default]
    Normal,
    /// Every GET/POST under `/account` answers 200 with the maintenance page
    /// ("Opération de maintenance en cours"); nobody can log in.
    Maintenance,
    /// Login works, but the home pages (for every line) use a redesigned
    /// markup in which `div.table-facture` / `div.invoice` match nothing.
    ChangedMarkup,
    /// Every request answers 503 "Service Unavailable" with `Retry-After: 0`.
    Unavailable,
    /// PDFs are served cut to their first half, with a matching
    /// `Content-Length`: the transfer looks complete, the file is not.
    TruncatedPdf,
    /// Every third request (counted from when this scenario was set) answers
    /// 429 with `Retry-After: 0`; the others behave as [`Scenario::Normal`].
    RateLimited,
}

impl Scenario {
    const ALL: [Scenario; 6] = [
        Scenario::Normal,
        Scenario::Maintenance,
        Scenario::ChangedMarkup,
        Scenario::Unavailable,
        Scenario::TruncatedPdf,
        Scenario::RateLimited,
    ];

    fn to_u8(self) -> u8 {
        match self {
            Scenario::Normal => 0,
            Scenario::Maintenance => 1,
            Scenario::ChangedMarkup => 2,
            Scenario::Unavailable => 3,
            Scenario::TruncatedPdf => 4,
            Scenario::RateLimited => 5,
        }
    }

    fn from_u8(value: u8) -> Scenario {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.to_u8() == value)
            .unwrap_or_default()
    }
}

/// An email the sandbox "sent".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentEmail {
    /// The recipient ([`EMAIL_TO`]).
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text, code included.
    pub body: String,
    /// The verification code it carries (6 digits).
    pub code: String,
}

/// A login waiting for its verification code.
struct Pending {
    /// The customer id that logged in.
    login: String,
    /// The code sent.
    code: String,
    /// The form's hidden `otp-token` (anti-CSRF), checked on post.
    token: String,
    /// When the code was sent (sandbox clock).
    sent_at: Instant,
    /// Wrong codes posted so far.
    attempts: u32,
}

/// New-device verification state.
#[derive(Default)]
struct TwoFactorState {
    /// Session id (not yet logged in) → its pending verification.
    pending: HashMap<String, Pending>,
    /// Trusted-device cookie value → customer id.
    trusted: HashMap<String, String>,
    /// Customer id → verification locked until (sandbox clock).
    locked: HashMap<String, Instant>,
    /// Every email sent, oldest first.
    outbox: Vec<SentEmail>,
    /// How far [`Sandbox::advance_clock`] moved the sandbox's clock.
    clock_offset: Duration,
}

/// State shared by the server task and the [`Sandbox`] handle.
#[derive(Default)]
struct Shared {
    scenario: AtomicU8,
    requests: AtomicUsize,
    login_posts: AtomicUsize,
    pdf_downloads: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Requests seen since [`Scenario::RateLimited`] was last set.
    rate_limit_counter: AtomicUsize,
    /// Session id → id of the current line.
    sessions: Mutex<HashMap<String, &'static str>>,
    /// `login-ident` → consecutive failed logins.
    failed_logins: Mutex<HashMap<String, u32>>,
    /// `POST /account/verification` received.
    verification_posts: AtomicUsize,
    /// New-device verification.
    two_factor: Mutex<TwoFactorState>,
    /// Session id → when it was last used, on the sandbox clock.
    session_seen: Mutex<HashMap<String, Duration>>,
    /// The sandbox clock's origin (set on first use).
    epoch: std::sync::OnceLock<std::time::Instant>,
    /// Time added to the sandbox clock by [`Sandbox::advance_clock`].
    clock_offset: Mutex<Duration>,
    /// Idle session lifetime; `None` means [`DEFAULT_SESSION_TTL`].
    session_ttl: Mutex<Option<Duration>>,
    /// The password the account takes; `None` means [`PASSWORD`].
    password: Mutex<Option<String>>,
}

impl Shared {
    fn scenario(&self) -> Scenario {
        Scenario::from_u8(self.scenario.load(Ordering::SeqCst))
    }

    fn set_scenario(&self, scenario: Scenario) {
        self.rate_limit_counter.store(0, Ordering::SeqCst);
        self.scenario.store(scenario.to_u8(), Ordering::SeqCst);
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, &'static str>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sandbox clock: real time since start plus the test's advances.
    fn now(&self) -> Duration {
        let offset = *self
            .clock_offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.epoch.get_or_init(std::time::Instant::now).elapsed() + offset
    }

    fn session_seen(&self) -> MutexGuard<'_, HashMap<String, Duration>> {
        self.session_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops sessions idle for longer than the TTL (as PHP's session GC
    /// does), then marks the request's session, if live, as used now.
    fn expire_and_touch(&self, headers: &HeaderMap) {
        let now = self.now();
        let ttl = self
            .session_ttl
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .unwrap_or(DEFAULT_SESSION_TTL);
        let mut sessions = self.sessions();
        let mut seen = self.session_seen();
        seen.retain(|id, last| {
            let alive = now.saturating_sub(*last) <= ttl;
            if !alive {
                sessions.remove(id);
            }
            alive
        });
        if let Some(id) = session_id(&sessions, headers) {
            seen.insert(id, now);
        }
    }

    fn touch(&self, id: &str) {
        let now = self.now();
        self.session_seen().insert(id.to_owned(), now);
    }

    fn failed_logins(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.failed_logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn two_factor(&self) -> MutexGuard<'_, TwoFactorState> {
        self.two_factor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TwoFactorState {
    /// The sandbox's clock: real time plus what tests added.
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running Free Mobile sandbox; stops when dropped or on [`Sandbox::shutdown`].
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .field("scenario", &self.shared.scenario())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a sandbox on `127.0.0.1` with a port chosen by the system.
    ///
    /// Must be called from within a Tokio runtime; the server runs on a
    /// spawned task until [`Sandbox::shutdown`] or drop.
    pub async fn start(scenario: Scenario) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        shared.set_scenario(scenario);
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // Either a stop request or the handle being dropped.
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "free mobile sandbox stopped with an error");
            }
        });
        tracing::debug!(%addr, ?scenario, "free mobile sandbox started");
        Ok(Sandbox {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The sandbox's origin, e.g. `http://127.0.0.1:41234` (no trailing slash);
    /// the customer area is at `{base_url}/account/`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Number of `POST /account/` (login attempts) received, whatever the
    /// scenario and outcome (503, 429, maintenance and 400 included).
    pub fn login_posts(&self) -> usize {
        self.shared.login_posts.load(Ordering::SeqCst)
    }

    /// Number of HTTP requests received, whatever their outcome.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Number of PDF responses (status 200) sent, truncated ones included.
    pub fn pdf_downloads(&self) -> usize {
        self.shared.pdf_downloads.load(Ordering::SeqCst)
    }

    /// The largest number of requests that were being handled at the same
    /// time since the sandbox started.
    pub fn max_concurrent_sessions(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Number of `POST /account/verification` (codes submitted) received.
    pub fn verification_posts(&self) -> usize {
        self.shared.verification_posts.load(Ordering::SeqCst)
    }

    /// Every email sent so far (verification codes), oldest first.
    pub fn outbox(&self) -> Vec<SentEmail> {
        self.shared.two_factor().outbox.clone()
    }

    /// The code of the last email sent, if any.
    pub fn last_email_code(&self) -> Option<String> {
        self.shared
            .two_factor()
            .outbox
            .last()
            .map(|mail| mail.code.clone())
    }

    /// Changes the account's password (default [`PASSWORD`]), so tests can
    /// use unusual values (the leak test).
    pub fn set_password(&self, password: &str) {
        *self
            .shared
            .password
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(password.to_owned());
    }

    /// Sets how long an idle session lives server-side (default
    /// [`DEFAULT_SESSION_TTL`]).
    pub fn set_session_ttl(&self, ttl: Duration) {
        *self
            .shared
            .session_ttl
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ttl);
    }

    /// Moves the sandbox clock forward, as if `by` had passed: sessions idle
    /// for longer than their TTL die at the next request, codes expire and
    /// lockouts end. Lets tests move time without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.two_factor().clock_offset += by;
        let mut offset = self
            .shared
            .clock_offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *offset += by;
    }

    /// Number of live sessions the sandbox holds.
    pub fn live_sessions(&self) -> usize {
        self.shared.sessions().len()
    }

    /// Switches to another scenario; applies to the next request. Sessions
    /// and failed-login counts are kept; the [`Scenario::RateLimited`]
    /// counter restarts.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared.set_scenario(scenario);
    }

    /// Stops accepting connections, lets in-flight requests finish (for at
    /// most a few seconds) and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The single entry point: counts, applies the scenario, then routes.
async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().starts_with("/__sandbox/") {
        // The sandbox's own debug routes: not part of the site, not counted.
        return debug_route(&shared, peer, &method, uri.path());
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::enter(&shared);
    shared.expire_and_touch(&headers);
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    if method == Method::POST && path == "/account/" {
        shared.login_posts.fetch_add(1, Ordering::SeqCst);
    }
    let pdf_route = path == "/account/conso-et-factures";
    tokio::time::sleep(if pdf_route { PDF_LATENCY } else { PAGE_LATENCY }).await;

    let scenario = shared.scenario();
    let mut response = match scenario {
        Scenario::Unavailable => unavailable(),
        Scenario::RateLimited
            if (shared.rate_limit_counter.fetch_add(1, Ordering::SeqCst) + 1) % 3 == 0 =>
        {
            too_many_requests()
        }
        Scenario::Maintenance if path == "/account" || path.starts_with("/account/") => {
            html(StatusCode::OK, MAINTENANCE_HTML)
        }
        _ => route(&shared, scenario, &method, path, query, &headers, &body),
    };
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER));
    tracing::debug!(
        %method,
        %uri,
        status = response.status().as_u16(),
        ?scenario,
        "free mobile sandbox request"
    );
    response
}

fn route(
    shared: &Shared,
    scenario: Scenario,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let is_get = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/account" if is_get => redirect(if query.is_empty() {
            "/account/".to_owned()
        } else {
            format!("/account/?{query}")
        }),
        "/account/" if is_get => account_get(shared, scenario, query, headers),
        "/account/" if *method == Method::POST => account_post(shared, headers, body),
        "/account/verification" if *method == Method::POST => {
            verification_post(shared, headers, body)
        }
        "/account/conso-et-factures" if is_get => invoices_get(shared, scenario, query, headers),
        "/account" | "/account/" | "/account/conso-et-factures" | "/account/verification" => {
            let mut response = html(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED_HTML);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            response
        }
        _ => html(StatusCode::NOT_FOUND, NOT_FOUND_HTML),
    }
}

/// `GET /account/`: login page, home page, `?switch-user=` or `?logout`.
fn account_get(shared: &Shared, scenario: Scenario, query: &str, headers: &HeaderMap) -> Response {
    let params = parse_pairs(query.as_bytes());
    if let Some(page) = pending_get(shared, &params, headers) {
        return page;
    }
    let mut sessions = shared.sessions();
    let session = session_id(&sessions, headers);
    if params.contains_key("logout") {
        if let Some(id) = &session {
            sessions.remove(id);
            shared.session_seen().remove(id);
        }
        let mut response = html(StatusCode::OK, LOGIN_HTML);
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "PHPSESSID=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; Path=/; HttpOnly",
            ),
        );
        return response;
    }
    let Some(session) = session else {
        return html(StatusCode::OK, LOGIN_HTML);
    };
    let Some(current) = sessions.get_mut(&session) else {
        return html(StatusCode::OK, LOGIN_HTML);
    };
    if let Some(wanted) = params.get("switch-user")
        && let Some((line, _)) = LINES.iter().find(|(line, _)| line == wanted)
    {
        *current = line;
    }
    home_page(scenario, current)
}

/// `POST /account/`: the login form.
fn account_post(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = parse_pairs(body);
    let (Some(ident), Some(password)) = (form.get("login-ident"), form.get("login-pwd")) else {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    };
    let ident = ident.trim();
    {
        let mut failures = shared.failed_logins();
        let count = failures.entry(ident.to_owned()).or_insert(0);
        if *count >= MAX_FAILED_LOGINS {
            return html(StatusCode::OK, LOGIN_BLOCKED_HTML);
        }
        let expected = shared
            .password
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| PASSWORD.to_owned());
        if (ident != LOGIN && ident != LOGIN_2FA) || *password != expected {
            *count += 1;
            return html(StatusCode::OK, LOGIN_FAILED_HTML);
        }
        failures.remove(ident);
    }
    if ident == LOGIN_2FA {
        let two_factor = shared.two_factor();
        let now = two_factor.now();
        if two_factor
            .locked
            .get(ident)
            .is_some_and(|until| now < *until)
        {
            return html(StatusCode::OK, VERIFICATION_LOCKED_HTML);
        }
        let trusted = cookie_values(headers, TRUSTED_DEVICE_COOKIE)
            .any(|device| two_factor.trusted.get(device).is_some_and(|l| l == ident));
        if !trusted {
            drop(two_factor);
            return start_verification(shared, headers, ident);
        }
    }
    // A fresh session id on every login, like `session_regenerate_id()`.
    let new_id = uuid::Uuid::new_v4().simple().to_string();
    let cookie = format!("{SESSION_COOKIE}={new_id}; Path=/; HttpOnly");
    let Ok(cookie) = HeaderValue::from_str(&cookie) else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML);
    };
    {
        let mut sessions = shared.sessions();
        if let Some(old) = session_id(&sessions, headers) {
            sessions.remove(&old);
        }
        sessions.insert(new_id.clone(), LINES[0].0);
    }
    shared.touch(&new_id);
    let mut response = redirect("/account/".to_owned());
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// A correct password from a device that is not trusted: a pending
/// session, a code in the outbox, and the verification page.
fn start_verification(shared: &Shared, headers: &HeaderMap, ident: &str) -> Response {
    let session = uuid::Uuid::new_v4().simple().to_string();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let code = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
    let cookie = format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly");
    let Ok(cookie) = HeaderValue::from_str(&cookie) else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML);
    };
    {
        let mut sessions = shared.sessions();
        if let Some(old) = session_id(&sessions, headers) {
            sessions.remove(&old);
        }
    }
    let mut two_factor = shared.two_factor();
    let stale: Vec<String> = cookie_values(headers, SESSION_COOKIE)
        .map(str::to_owned)
        .collect();
    for old in stale {
        two_factor.pending.remove(&old);
    }
    let sent_at = two_factor.now();
    two_factor.outbox.push(SentEmail {
        to: EMAIL_TO.to_owned(),
        subject: "Free Mobile : votre code de vérification".to_owned(),
        body: format!(
            "Bonjour,\n\nVotre code de vérification pour accéder à votre Espace Abonné est : {code}\nIl est valable 10 minutes.\n\nSi vous n'êtes pas à l'origine de cette demande, changez votre mot de passe.\n"
        ),
        code: code.clone(),
    });
    let page = verification_page(VERIFICATION_HTML, &token, 0);
    two_factor.pending.insert(
        session,
        Pending {
            login: ident.to_owned(),
            code,
            token,
            sent_at,
            attempts: 0,
        },
    );
    let mut response = page;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// `GET /account/` for a session waiting for its code: the verification
/// page again, or `?logout` to give up. `None` when the session is not
/// pending.
fn pending_get(
    shared: &Shared,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<Response> {
    let mut two_factor = shared.two_factor();
    let session = cookie_values(headers, SESSION_COOKIE)
        .find(|value| two_factor.pending.contains_key(*value))?
        .to_owned();
    if params.contains_key("logout") {
        two_factor.pending.remove(&session);
        return Some(html(StatusCode::OK, LOGIN_HTML));
    }
    let pending = two_factor.pending.get(&session)?;
    Some(verification_page(VERIFICATION_HTML, &pending.token, 0))
}

/// `POST /account/verification`: checks the code of a pending session.
fn verification_post(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    shared.verification_posts.fetch_add(1, Ordering::SeqCst);
    let form = parse_pairs(body);
    let (Some(code), Some(token)) = (form.get("otp"), form.get("otp-token")) else {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    };
    let mut two_factor = shared.two_factor();
    let now = two_factor.now();
    let Some(session) = cookie_values(headers, SESSION_COOKIE)
        .find(|value| two_factor.pending.contains_key(*value))
        .map(str::to_owned)
    else {
        // No pending verification (never logged in, or given up): the form.
        return html(StatusCode::OK, LOGIN_HTML);
    };
    let Some(pending) = two_factor.pending.get_mut(&session) else {
        return html(StatusCode::OK, LOGIN_HTML);
    };
    if *token != pending.token {
        return html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML);
    }
    if now.saturating_duration_since(pending.sent_at) > CODE_VALIDITY {
        two_factor.pending.remove(&session);
        return html(StatusCode::OK, LOGIN_CODE_EXPIRED_HTML);
    }
    if code.trim() != pending.code {
        pending.attempts += 1;
        if pending.attempts >= MAX_CODE_ATTEMPTS {
            let login = pending.login.clone();
            two_factor.pending.remove(&session);
            two_factor.locked.insert(login, now + LOCKOUT);
            return html(StatusCode::OK, VERIFICATION_LOCKED_HTML);
        }
        return verification_page(
            VERIFICATION_WRONG_HTML,
            &pending.token,
            MAX_CODE_ATTEMPTS - pending.attempts,
        );
    }
    let login = pending.login.clone();
    two_factor.pending.remove(&session);
    let device = (form.get("otp-trust").map(String::as_str) == Some("1")).then(|| {
        let device = uuid::Uuid::new_v4().simple().to_string();
        two_factor.trusted.insert(device.clone(), login);
        device
    });
    drop(two_factor);
    // Logged in: a fresh session id, like after a plain login.
    let new_id = uuid::Uuid::new_v4().simple().to_string();
    let mut cookies = vec![format!("{SESSION_COOKIE}={new_id}; Path=/; HttpOnly")];
    if let Some(device) = device {
        cookies.push(format!(
            "{TRUSTED_DEVICE_COOKIE}={device}; Max-Age={TRUSTED_DEVICE_MAX_AGE}; Path=/account/; HttpOnly"
        ));
    }
    shared.sessions().insert(new_id, LINES[0].0);
    let mut response = redirect("/account/".to_owned());
    for cookie in cookies {
        let Ok(cookie) = HeaderValue::from_str(&cookie) else {
            return html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML);
        };
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A verification page with its token and remaining tries filled in.
fn verification_page(template: &str, token: &str, remaining: u32) -> Response {
    html(
        StatusCode::OK,
        template
            .replace("{{token}}", token)
            .replace("{{remaining}}", &remaining.to_string()),
    )
}

/// `/__sandbox/...`: the sandbox's debug routes, for loopback clients only.
fn debug_route(shared: &Shared, peer: SocketAddr, method: &Method, path: &str) -> Response {
    if !peer.ip().is_loopback() {
        return html(StatusCode::NOT_FOUND, NOT_FOUND_HTML);
    }
    match path {
        OUTBOX_PATH if *method == Method::GET => {
            let outbox = shared.two_factor().outbox.clone();
            match serde_json::to_vec(&outbox) {
                Ok(json) => {
                    let mut response = Response::new(Body::from(json));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                }
                Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML),
            }
        }
        _ => html(StatusCode::NOT_FOUND, NOT_FOUND_HTML),
    }
}

/// `GET /account/conso-et-factures`: an invoice PDF, or the current home page
/// when no `facture=` is asked for.
fn invoices_get(shared: &Shared, scenario: Scenario, query: &str, headers: &HeaderMap) -> Response {
    let current = {
        let sessions = shared.sessions();
        session_id(&sessions, headers).and_then(|session| sessions.get(&session).copied())
    };
    let Some(current) = current else {
        return redirect("/account/".to_owned());
    };
    let params = parse_pairs(query.as_bytes());
    let Some(facture) = params.get("facture") else {
        return home_page(scenario, current);
    };
    let found = PDFS.iter().find(|pdf| {
        params.get("id").is_some_and(|id| id == pdf.id)
            && facture == pdf.facture
            && params.get("l").is_some_and(|line| line == pdf.line)
            && params
                .get("date")
                .is_some_and(|date| date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
    });
    let Some(found) = found else {
        return html(StatusCode::NOT_FOUND, NOT_FOUND_HTML);
    };
    let bytes = if scenario == Scenario::TruncatedPdf {
        &found.bytes[..found.bytes.len() / 2]
    } else {
        found.bytes
    };
    let disposition = format!("attachment; filename=\"facture_{}.pdf\"", found.id);
    let Ok(disposition) = HeaderValue::from_str(&disposition) else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_HTML);
    };
    shared.pdf_downloads.fetch_add(1, Ordering::SeqCst);
    let mut response = Response::new(Body::from(Bytes::from_static(bytes)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0, must-revalidate"),
    );
    response
}

fn home_page(scenario: Scenario, line: &str) -> Response {
    if scenario == Scenario::ChangedMarkup {
        return html(StatusCode::OK, HOME_CHANGED_HTML);
    }
    let page = LINES
        .iter()
        .find(|(id, _)| *id == line)
        .map_or(HOME_LINE1_HTML, |(_, page)| page);
    html(StatusCode::OK, page)
}

/// The values of every cookie called `name` the request carries.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The session id from the `PHPSESSID` cookie, if it names a live session.
fn session_id(sessions: &HashMap<String, &'static str>, headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .find(|value| sessions.contains_key(*value))
        .map(str::to_owned)
}

/// Decodes `application/x-www-form-urlencoded` pairs (first value wins).
fn parse_pairs(input: &[u8]) -> HashMap<String, String> {
    let mut pairs = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(input) {
        pairs
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    pairs
}

/// An HTML response with the headers a PHP site behind nginx sends.
fn html(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_static("Thu, 19 Nov 1981 08:52:00 GMT"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    response
}

fn redirect(location: String) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => html(StatusCode::BAD_REQUEST, BAD_REQUEST_HTML),
    }
}

fn unavailable() -> Response {
    let mut response = html(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_HTML);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
    response
}

fn too_many_requests() -> Response {
    let mut response = html(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_HTML);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A parsed HTTP/1.1 response.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        }

        fn text(&self) -> String {
            String::from_utf8(self.body.clone()).expect("UTF-8 body")
        }

        /// Every `Set-Cookie` pair (`name=value`), in order.
        fn set_cookies(&self) -> Vec<String> {
            self.headers
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case("set-cookie"))
                .filter_map(|(_, value)| value.split(';').next())
                .map(|pair| pair.trim().to_owned())
                .collect()
        }

        /// `PHPSESSID=...` from `Set-Cookie`, ready for a `Cookie` header.
        fn session_cookie(&self) -> Option<String> {
            let set_cookie = self.header("set-cookie")?;
            let pair = set_cookie.split(';').next()?.trim();
            pair.starts_with("PHPSESSID=").then(|| pair.to_owned())
        }
    }

    /// Sends one request on a fresh connection and reads the whole response.
    async fn send(
        sandbox: &Sandbox,
        method: &str,
        target: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> Reply {
        let mut stream = TcpStream::connect(sandbox.addr).await.expect("connect");
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sandbox-test\r\nAccept: */*\r\nConnection: close\r\n",
            sandbox.addr
        );
        if let Some(cookie) = cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        let body = form.unwrap_or("");
        if form.is_some() {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        parse_reply(&raw)
    }

    fn parse_reply(raw: &[u8]) -> Reply {
        let split = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .expect("end of headers");
        let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
        let rest = &raw[split + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .expect("status code")
            .parse()
            .expect("numeric status");
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("header line");
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(length) = reply.header("content-length") {
            let length: usize = length.parse().expect("numeric length");
            assert_eq!(rest.len(), length, "body length matches Content-Length");
            reply.body = rest.to_vec();
        } else if reply
            .header("transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
        {
            reply.body = dechunk(rest);
        } else {
            reply.body = rest.to_vec();
        }
        reply
    }

    fn dechunk(mut data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let end = data
                .windows(2)
                .position(|window| window == b"\r\n")
                .expect("chunk size line");
            let size_text = std::str::from_utf8(&data[..end]).expect("chunk size");
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("hex chunk size");
            data = &data[end + 2..];
            if size == 0 {
                return body;
            }
            body.extend_from_slice(&data[..size]);
            data = &data[size + 2..];
        }
    }

    fn login_form(ident: &str, password: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("login-ident", ident)
            .append_pair("login-pwd", password)
            .append_pair("bt-login", "1")
            .finish()
    }

    async fn login(sandbox: &Sandbox) -> String {
        let reply = send(
            sandbox,
            "POST",
            "/account/",
            None,
            Some(&login_form(LOGIN, PASSWORD)),
        )
        .await;
        assert_eq!(reply.status, 302);
        reply.session_cookie().expect("session cookie")
    }

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    /// Invoice download links of a page, `&amp;` decoded.
    fn invoice_links(page: &str) -> Vec<String> {
        page.split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .filter(|href| href.starts_with("/account/conso-et-factures?facture="))
            .map(|href| href.replace("&amp;", "&"))
            .collect()
    }

    fn pdf_link(id: &str) -> String {
        let pdf = PDFS.iter().find(|pdf| pdf.id == id).expect("known id");
        format!(
            "/account/conso-et-factures?facture={}&l={}&id={}&date=20251202",
            pdf.facture, pdf.line, pdf.id
        )
    }

    #[test]
    fn fixtures_are_consistent() {
        let mut ids: Vec<&str> = PDFS.iter().map(|pdf| pdf.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 20);
        for pdf in &PDFS {
            assert_eq!(pdf.id.len(), 16);
            assert!(
                pdf.id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(pdf.bytes.starts_with(b"%PDF-1.4"));
            assert!(pdf.bytes.ends_with(b"%%EOF\n"));
        }
        let mut linked = Vec::new();
        for (line, page) in LINES {
            for href in invoice_links(page) {
                let params = parse_pairs(href.split_once('?').expect("query").1.as_bytes());
                let pdf = PDFS
                    .iter()
                    .find(|pdf| Some(&pdf.id.to_owned()) == params.get("id"))
                    .expect("linked PDF exists");
                assert_eq!(params.get("facture").map(String::as_str), Some(pdf.facture));
                assert_eq!(params.get("l").map(String::as_str), Some(pdf.line));
                assert_eq!(pdf.line, line);
                linked.push(pdf.id);
            }
        }
        linked.sort_unstable();
        assert_eq!(linked, ids, "every PDF is linked exactly once");
        assert_eq!(invoice_links(HOME_CHANGED_HTML).len(), 14);
    }

    #[tokio::test]
    async fn login_sets_cookie_and_home_lists_line_one_invoices() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let anonymous = send(&sandbox, "GET", "/account/", None, None).await;
        assert_eq!(anonymous.status, 200);
        assert!(anonymous.text().contains("class=\"form-login\""));
        assert_eq!(anonymous.header("server"), Some(SERVER));
        assert_eq!(
            anonymous.header("content-type"),
            Some("text/html; charset=UTF-8")
        );

        let reply = send(
            &sandbox,
            "POST",
            "/account/",
            None,
            Some(&login_form(LOGIN, PASSWORD)),
        )
        .await;
        assert_eq!(reply.status, 302);
        assert_eq!(reply.header("location"), Some("/account/"));
        let set_cookie = reply.header("set-cookie").expect("Set-Cookie");
        assert!(set_cookie.starts_with("PHPSESSID="));
        assert!(set_cookie.contains("Path=/"));
        assert!(set_cookie.contains("HttpOnly"));
        let cookie = reply.session_cookie().expect("cookie");

        let home = send(&sandbox, "GET", "/account/", Some(&cookie), None).await;
        assert_eq!(home.status, 200);
        let page = home.text();
        assert!(page.contains("href=\"/account/?logout\""));
        assert!(!page.contains("form-login"));
        assert!(page.contains("<p class=\"table-sub-title\">06 12 34 56 78</p>"));
        assert_eq!(count(&page, "<div class=\"invoice"), 14);
        assert_eq!(count(&page, "facture=pdf&amp;"), 12);
        assert_eq!(count(&page, "facture=pdfrecap&amp;"), 2);
        assert_eq!(invoice_links(&page).len(), 14);

        // Another cookie value is just "logged out".
        let stranger = send(&sandbox, "GET", "/account/", Some("PHPSESSID=nope"), None).await;
        assert!(stranger.text().contains("class=\"form-login\""));
        sandbox.shutdown().await;
    }

    #[tokio::test]
    async fn wrong_password_shows_flash_error() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let reply = send(
            &sandbox,
            "POST",
            "/account/",
            None,
            Some(&login_form(LOGIN, "wrong")),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert!(reply.header("set-cookie").is_none());
        let page = reply.text();
        assert!(page.contains("flash flash-error"));
        assert!(page.contains("Votre nom d'utilisateur ou mot de passe incorrect"));
        assert!(page.contains("class=\"form-login\""));

        let missing = send(
            &sandbox,
            "POST",
            "/account/",
            None,
            Some("login-ident=12345678"),
        )
        .await;
        assert_eq!(missing.status, 400);
        assert_eq!(sandbox.login_posts(), 2);
    }

    #[tokio::test]
    async fn blocked_after_five_failures() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        for _ in 0..5 {
            let reply = send(
                &sandbox,
                "POST",
                "/account/",
                None,
                Some(&login_form(LOGIN, "wrong")),
            )
            .await;
            assert!(reply.text().contains("mot de passe incorrect"));
        }
        let reply = send(
            &sandbox,
            "POST",
            "/account/",
            None,
            Some(&login_form(LOGIN, PASSWORD)),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert!(reply.header("set-cookie").is_none());
        assert!(
            reply
                .text()
                .contains("Les connexions à votre compte sont temporairement bloquées")
        );
        assert_eq!(sandbox.login_posts(), 6);
    }

    #[tokio::test]
    async fn pdf_needs_a_session_and_is_served_whole() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let link = pdf_link("bf084f2f231923b7");
        let anonymous = send(&sandbox, "GET", &link, None, None).await;
        assert_eq!(anonymous.status, 302);
        assert_eq!(anonymous.header("location"), Some("/account/"));
        assert_eq!(sandbox.pdf_downloads(), 0);

        let cookie = login(&sandbox).await;
        let reply = send(&sandbox, "GET", &link, Some(&cookie), None).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/pdf"));
        let expected = PDFS[1].bytes;
        assert_eq!(
            reply.header("content-length"),
            Some(expected.len().to_string().as_str())
        );
        assert_eq!(reply.body, expected);
        assert!(reply.body.ends_with(b"%%EOF\n"));
        assert_eq!(sandbox.pdf_downloads(), 1);

        // Every link of both home pages downloads.
        let mut downloads = 1;
        for page in [HOME_LINE1_HTML, HOME_LINE2_HTML] {
            for href in invoice_links(page) {
                let reply = send(&sandbox, "GET", &href, Some(&cookie), None).await;
                assert_eq!(reply.status, 200, "{href}");
                downloads += 1;
            }
        }
        assert_eq!(sandbox.pdf_downloads(), downloads);

        // Unknown id, wrong line, wrong kind, missing date: 404.
        for target in [
            "/account/conso-et-factures?facture=pdf&l=12345678&id=0000000000000000&date=20251202",
            "/account/conso-et-factures?facture=pdf&l=87654321&id=bf084f2f231923b7&date=20251202",
            "/account/conso-et-factures?facture=pdfrecap&l=12345678&id=bf084f2f231923b7&date=20251202",
            "/account/conso-et-factures?facture=pdf&l=12345678&id=bf084f2f231923b7",
        ] {
            let reply = send(&sandbox, "GET", target, Some(&cookie), None).await;
            assert_eq!(reply.status, 404, "{target}");
        }
        assert_eq!(sandbox.pdf_downloads(), downloads);
    }

    #[tokio::test]
    async fn truncated_pdf_scenario_serves_half() {
        let sandbox = Sandbox::start(Scenario::TruncatedPdf).await.expect("start");
        let cookie = login(&sandbox).await;
        let full = PDFS[0].bytes;
        let reply = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&cookie), None).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), full.len() / 2);
        assert_eq!(
            reply.header("content-length"),
            Some((full.len() / 2).to_string().as_str())
        );
        assert!(reply.body.starts_with(b"%PDF-1.4"));
        assert!(!reply.body.ends_with(b"%%EOF\n"));

        sandbox.set_scenario(Scenario::Normal);
        let reply = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&cookie), None).await;
        assert_eq!(reply.body, full);
    }

    #[tokio::test]
    async fn switch_user_and_logout() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let cookie = login(&sandbox).await;
        let line2 = send(
            &sandbox,
            "GET",
            "/account/?switch-user=87654321",
            Some(&cookie),
            None,
        )
        .await;
        let page = line2.text();
        assert!(page.contains("<p class=\"table-sub-title\">07 98 76 54 32</p>"));
        assert_eq!(count(&page, "<div class=\"invoice"), 6);
        assert!(!page.contains("pdfrecap"));

        // The session remembers the line; unknown ids change nothing.
        for target in ["/account/", "/account/?switch-user=99999999"] {
            let page = send(&sandbox, "GET", target, Some(&cookie), None)
                .await
                .text();
            assert!(page.contains("<p class=\"table-sub-title\">07 98 76 54 32</p>"));
        }
        let back = send(
            &sandbox,
            "GET",
            "/account/?switch-user=12345678",
            Some(&cookie),
            None,
        )
        .await;
        assert!(
            back.text()
                .contains("<p class=\"table-sub-title\">06 12 34 56 78</p>")
        );

        // Switching without a session shows the login page.
        let anonymous = send(
            &sandbox,
            "GET",
            "/account/?switch-user=87654321",
            None,
            None,
        )
        .await;
        assert!(anonymous.text().contains("class=\"form-login\""));

        let logout = send(&sandbox, "GET", "/account/?logout", Some(&cookie), None).await;
        assert_eq!(logout.status, 200);
        assert!(logout.text().contains("class=\"form-login\""));
        let after = send(&sandbox, "GET", "/account/", Some(&cookie), None).await;
        assert!(after.text().contains("class=\"form-login\""));
        let pdf = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&cookie), None).await;
        assert_eq!(pdf.status, 302);
    }

    #[tokio::test]
    async fn maintenance_scenario() {
        let sandbox = Sandbox::start(Scenario::Maintenance).await.expect("start");
        let page = send(&sandbox, "GET", "/account/", None, None).await;
        assert_eq!(page.status, 200);
        assert!(page.text().contains("Opération de maintenance en cours"));
        assert!(!page.text().contains("form-login"));
        let post = send(
            &sandbox,
            "POST",
            "/account/",
            None,
            Some(&login_form(LOGIN, PASSWORD)),
        )
        .await;
        assert_eq!(post.status, 200);
        assert!(post.header("set-cookie").is_none());
        assert!(post.text().contains("Opération de maintenance en cours"));
        assert_eq!(sandbox.login_posts(), 1);

        sandbox.set_scenario(Scenario::Normal);
        let cookie = login(&sandbox).await;
        sandbox.set_scenario(Scenario::Maintenance);
        let pdf = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&cookie), None).await;
        assert!(pdf.text().contains("Opération de maintenance en cours"));
    }

    #[tokio::test]
    async fn changed_markup_scenario() {
        let sandbox = Sandbox::start(Scenario::ChangedMarkup)
            .await
            .expect("start");
        let cookie = login(&sandbox).await;
        for target in ["/account/", "/account/?switch-user=87654321"] {
            let page = send(&sandbox, "GET", target, Some(&cookie), None)
                .await
                .text();
            assert!(page.contains("href=\"/account/?logout\""));
            assert!(page.contains("invoices-list"));
            assert!(!page.contains("table-facture"));
            assert!(!page.contains("class=\"invoice\""));
            assert!(!page.contains("class=\"invoice "));
            assert_eq!(count(&page, "<article class=\"bill"), 14);
        }
    }

    #[tokio::test]
    async fn unavailable_scenario() {
        let sandbox = Sandbox::start(Scenario::Unavailable).await.expect("start");
        for target in ["/account/", "/nowhere"] {
            let reply = send(&sandbox, "GET", target, None, None).await;
            assert_eq!(reply.status, 503);
            assert_eq!(reply.header("retry-after"), Some("0"));
            assert!(reply.text().contains("Service Unavailable"));
        }
        let post = send(
            &sandbox,
            "POST",
            "/account/",
            None,
            Some(&login_form(LOGIN, PASSWORD)),
        )
        .await;
        assert_eq!(post.status, 503);
        assert_eq!(sandbox.login_posts(), 1);
        assert_eq!(sandbox.requests(), 3);
    }

    #[tokio::test]
    async fn rate_limited_scenario() {
        let sandbox = Sandbox::start(Scenario::RateLimited).await.expect("start");
        let mut statuses = Vec::new();
        for _ in 0..7 {
            statuses.push(send(&sandbox, "GET", "/account/", None, None).await.status);
        }
        assert_eq!(statuses, [200, 200, 429, 200, 200, 429, 200]);
        sandbox.set_scenario(Scenario::RateLimited);
        let first = send(&sandbox, "GET", "/account/", None, None).await;
        assert_eq!(first.status, 200);
        let _ = send(&sandbox, "GET", "/account/", None, None).await;
        let third = send(&sandbox, "GET", "/account/", None, None).await;
        assert_eq!(third.status, 429);
        assert_eq!(third.header("retry-after"), Some("0"));
    }

    #[tokio::test]
    async fn counters_and_concurrency() {
        let sandbox = Arc::new(Sandbox::start(Scenario::Normal).await.expect("start"));
        let cookie = login(&sandbox).await;
        assert_eq!(sandbox.requests(), 1);
        assert_eq!(sandbox.login_posts(), 1);
        let mut tasks = Vec::new();
        for pdf in PDFS.iter().take(8) {
            let sandbox = Arc::clone(&sandbox);
            let cookie = cookie.clone();
            tasks.push(tokio::spawn(async move {
                send(&sandbox, "GET", &pdf_link(pdf.id), Some(&cookie), None)
                    .await
                    .status
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("join"), 200);
        }
        assert_eq!(sandbox.requests(), 9);
        assert_eq!(sandbox.pdf_downloads(), 8);
        assert!(sandbox.max_concurrent_sessions() >= 2);
        assert!(sandbox.max_concurrent_sessions() <= 8);

        let missing = send(&sandbox, "GET", "/nowhere", None, None).await;
        assert_eq!(missing.status, 404);
        assert!(missing.text().contains("Erreur 404"));
        assert_eq!(sandbox.requests(), 10);
    }

    #[tokio::test]
    async fn shutdown_stops_the_server() {
        let sandbox = Sandbox::start(Scenario::default()).await.expect("start");
        let addr = sandbox.addr;
        assert!(sandbox.base_url().starts_with("http://127.0.0.1:"));
        assert_eq!(sandbox.base_url(), format!("http://{addr}"));
        sandbox.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err());

        let dropped = Sandbox::start(Scenario::default()).await.expect("start");
        let addr = dropped.addr;
        drop(dropped);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    /// The hidden `otp-token` of a verification page.
    fn otp_token(page: &str) -> String {
        let rest = page
            .split("name=\"otp-token\" value=\"")
            .nth(1)
            .expect("otp-token input");
        rest.split('"').next().expect("token value").to_owned()
    }

    fn otp_form(code: &str, token: &str, trust: bool) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("otp-token", token)
            .append_pair("otp", code);
        if trust {
            form.append_pair("otp-trust", "1");
        }
        form.append_pair("bt-otp", "1").finish()
    }

    /// Logs in as [`LOGIN_2FA`] (with `cookie`, if any) and expects the
    /// verification page; returns its session cookie and token.
    async fn login_2fa(sandbox: &Sandbox, cookie: Option<&str>) -> (String, String) {
        let reply = send(
            sandbox,
            "POST",
            "/account/",
            cookie,
            Some(&login_form(LOGIN_2FA, PASSWORD)),
        )
        .await;
        assert_eq!(reply.status, 200);
        let page = reply.text();
        assert!(page.contains("form-verification"), "{page}");
        assert!(page.contains(&format!(
            "Un code de vérification a été envoyé à <strong>{EMAIL_HINT}</strong>"
        )));
        assert!(!page.contains("{{token}}"));
        (reply.session_cookie().expect("session"), otp_token(&page))
    }

    #[tokio::test]
    async fn new_device_verification_sends_a_code_and_trusts_the_device() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let (pending, token) = login_2fa(&sandbox, None).await;
        let outbox = sandbox.outbox();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].to, EMAIL_TO);
        let code = sandbox.last_email_code().expect("code");
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert!(outbox[0].body.contains(&code));

        // Pending is not logged in: the page again, and no PDF.
        let again = send(&sandbox, "GET", "/account/", Some(&pending), None).await;
        assert!(again.text().contains("form-verification"));
        assert_eq!(otp_token(&again.text()), token);
        let pdf = send(&sandbox, "GET", &pdf_link(PDFS[0].id), Some(&pending), None).await;
        assert_eq!(pdf.status, 302);

        // A wrong token is refused outright; a wrong code shows the error.
        let forged = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(&code, "forged", true)),
        )
        .await;
        assert_eq!(forged.status, 400);
        let wrong_code = if code == "000000" { "111111" } else { "000000" };
        let wrong = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(wrong_code, &token, true)),
        )
        .await;
        assert_eq!(wrong.status, 200);
        let page = wrong.text();
        assert!(page.contains("Le code saisi est incorrect. Il vous reste 4 essai(s)."));
        assert!(page.contains("form-verification"));

        // The same code still works after a wrong one.
        let right = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(&code, &token, true)),
        )
        .await;
        assert_eq!(right.status, 302);
        let cookies = right.set_cookies();
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        let session = cookies[0].clone();
        assert!(session.starts_with("PHPSESSID=") && session != pending);
        let device = cookies[1].clone();
        assert!(device.starts_with("fm_trusted_device="));
        assert!(
            right
                .headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.contains("Max-Age="))
        );
        let home = send(&sandbox, "GET", "/account/", Some(&session), None).await;
        assert!(home.text().contains("href=\"/account/?logout\""));
        // The pending session is gone once used.
        let old = send(&sandbox, "GET", "/account/", Some(&pending), None).await;
        assert!(old.text().contains("class=\"form-login\""));
        assert_eq!(sandbox.verification_posts(), 3);

        // With the trusted-device cookie, no code is asked again.
        let trusted = send(
            &sandbox,
            "POST",
            "/account/",
            Some(&device),
            Some(&login_form(LOGIN_2FA, PASSWORD)),
        )
        .await;
        assert_eq!(trusted.status, 302);
        assert_eq!(sandbox.outbox().len(), 1);
        // Without it (another device), a new code is sent.
        let _ = login_2fa(&sandbox, None).await;
        assert_eq!(sandbox.outbox().len(), 2);
        // The plain demo account is never asked.
        let _ = login(&sandbox).await;
        assert_eq!(sandbox.outbox().len(), 2);
    }

    #[tokio::test]
    async fn untrusted_success_and_logout_while_pending() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let (pending, token) = login_2fa(&sandbox, None).await;
        let code = sandbox.last_email_code().expect("code");
        let right = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(&code, &token, false)),
        )
        .await;
        assert_eq!(right.status, 302);
        assert_eq!(right.set_cookies().len(), 1, "no trusted-device cookie");

        let (pending, token) = login_2fa(&sandbox, None).await;
        let code = sandbox.last_email_code().expect("code");
        let out = send(&sandbox, "GET", "/account/?logout", Some(&pending), None).await;
        assert!(out.text().contains("class=\"form-login\""));
        let late = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(&code, &token, true)),
        )
        .await;
        assert!(late.text().contains("class=\"form-login\""));
        assert!(late.set_cookies().is_empty());
    }

    #[tokio::test]
    async fn five_wrong_codes_lock_verification_for_a_while() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let (pending, token) = login_2fa(&sandbox, None).await;
        let code = sandbox.last_email_code().expect("code");
        let wrong_code = if code == "000000" { "111111" } else { "000000" };
        for remaining in (1..MAX_CODE_ATTEMPTS).rev() {
            let page = send(
                &sandbox,
                "POST",
                "/account/verification",
                Some(&pending),
                Some(&otp_form(wrong_code, &token, true)),
            )
            .await
            .text();
            assert!(
                page.contains(&format!("Il vous reste {remaining} essai(s)")),
                "{page}"
            );
        }
        let locked = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(wrong_code, &token, true)),
        )
        .await
        .text();
        assert!(locked.contains("Trop de codes erronés"));
        assert!(!locked.contains("form-verification"));
        // The right code is of no use any more, nor a new login.
        let late = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(&code, &token, true)),
        )
        .await;
        assert!(late.text().contains("class=\"form-login\""));
        let relogin = send(
            &sandbox,
            "POST",
            "/account/",
            None,
            Some(&login_form(LOGIN_2FA, PASSWORD)),
        )
        .await;
        assert!(relogin.text().contains("Trop de codes erronés"));
        assert_eq!(sandbox.outbox().len(), 1);
        // After the lockout, a login sends a new code.
        sandbox.advance_clock(LOCKOUT + Duration::from_secs(1));
        let _ = login_2fa(&sandbox, None).await;
        assert_eq!(sandbox.outbox().len(), 2);
    }

    #[tokio::test]
    async fn a_code_expires_after_ten_minutes() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let (pending, token) = login_2fa(&sandbox, None).await;
        let code = sandbox.last_email_code().expect("code");
        sandbox.advance_clock(CODE_VALIDITY + Duration::from_secs(1));
        let expired = send(
            &sandbox,
            "POST",
            "/account/verification",
            Some(&pending),
            Some(&otp_form(&code, &token, true)),
        )
        .await;
        assert_eq!(expired.status, 200);
        let page = expired.text();
        assert!(page.contains("Votre code de vérification a expiré"));
        assert!(page.contains("class=\"form-login\""));
        assert!(expired.set_cookies().is_empty());
    }

    #[tokio::test]
    async fn the_outbox_endpoint_lists_sent_emails_and_is_not_counted() {
        let sandbox = Sandbox::start(Scenario::Normal).await.expect("start");
        let empty = send(&sandbox, "GET", OUTBOX_PATH, None, None).await;
        assert_eq!(empty.status, 200);
        assert_eq!(empty.header("content-type"), Some("application/json"));
        assert_eq!(empty.text(), "[]");
        let _ = login_2fa(&sandbox, None).await;
        let code = sandbox.last_email_code().expect("code");
        let listed: serde_json::Value =
            serde_json::from_str(&send(&sandbox, "GET", OUTBOX_PATH, None, None).await.text())
                .expect("json");
        assert_eq!(listed[0]["code"], code.as_str());
        assert_eq!(listed[0]["to"], EMAIL_TO);
        assert_eq!(sandbox.requests(), 1, "debug routes are not counted");
        // Even when the site is down.
        sandbox.set_scenario(Scenario::Unavailable);
        assert_eq!(
            send(&sandbox, "GET", OUTBOX_PATH, None, None).await.status,
            200
        );
    }
}
