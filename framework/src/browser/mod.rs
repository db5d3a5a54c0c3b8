//! A headless chromium for konnectors whose login needs scripts.
//!
//! [`BrowserSession`] drives Debian's `/usr/bin/chromium` (another path
//! through the `GLEANER_CHROMIUM` environment variable) over the DevTools
//! protocol with the `headless_chrome` crate. A konnector gets one from
//! [`crate::RunContext::browser`], logs in with [`BrowserSession::goto`],
//! [`BrowserSession::fill`] and [`BrowserSession::click`], then hands the
//! cookies to its [`HttpClient`] with [`BrowserSession::cookies_into`] and
//! downloads over plain HTTP, which is faster, budgeted and retried.
//!
//! What the session guarantees:
//! - **The manifest's hosts are enforced inside the browser.** Every
//!   request of every tab (documents, scripts, images, XHR, fetch, frames;
//!   redirects too) is paused before it leaves chromium and failed with
//!   `BlockedByClient` unless its host is allowed (see `guard`); refusals
//!   are logged (warn) and listed by [`BrowserSession::refused`]. Tabs the
//!   page opens itself (popups) are blocked (`--block-new-web-contents`)
//!   and, should one appear anyway, guarded within milliseconds by a
//!   watcher; as a backstop chromium's resolver fails every host name not
//!   in the list (`--host-resolver-rules`), which also covers requests no
//!   tab sees (service workers).
//! - **No chromium process outlives the session**: [`BrowserSession::close`],
//!   or dropping the session (a konnector error, the run's time limit, a
//!   cancelled run future), sends `SIGKILL` to the whole process tree (see
//!   [`procs`]) and waits for it to go, then deletes the session's
//!   temporary profile.
//! - **Every wait has a limit** ([`BrowserConfig::timeout`], 20 s by
//!   default): a selector that never shows is `UNKNOWN_ERROR.PAGE_CHANGED`
//!   naming the selector and the page, a page that never loads is
//!   `VENDOR_DOWN` naming the URL.
//! - **Secrets are typed, never logged**: [`BrowserSession::fill`] takes a
//!   [`Secret`] and inserts it with CDP's `Input.insertText`; the session
//!   logs selectors, not values (the `headless_chrome` crate traces its
//!   CDP messages at `trace` level through `log`: those lines go through
//!   [`crate::redact`] like every other, where the secret is registered).
//! - **Blocking work stays off the async runtime**: the crate's API is
//!   blocking, so every call runs in `tokio::task::spawn_blocking`, under
//!   an outer time limit.
//!
//! Launch settings, and why: headless; `--no-sandbox` only when running as
//! root (chromium refuses to start as root with its sandbox);
//! certificate errors are **not** ignored (headless_chrome ignores them by
//! default, which would let a man in the middle read the login); no
//! background networking, component updates, sync, QUIC, first-run or
//! pings, so the browser itself contacts nobody; a fresh temporary profile
//! and config directory per session (`XDG_CONFIG_HOME` points into it, so
//! crash handlers write there too and carry the marker used to find them);
//! the DevTools connection's idle limit raised to 10 minutes (the default
//! 30 s closed it during a long konnector step). The crate's `offline`
//! feature stays on and `fetch` (which downloads a browser) off.
//!
//! A missing binary is `UNKNOWN_ERROR.BROWSER_MISSING`, whose message names
//! the path and `apt-get install -y chromium`.

mod cookies;
mod guard;
pub mod procs;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::browser::tab::RequestPausedDecision;
use headless_chrome::protocol::cdp::{Fetch, Input, Network, Runtime};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde::{Deserialize, Serialize};

use self::cookies::BrowserCookie;
use self::guard::Guard;
use crate::error::{ErrorCode, KonnectorError, Result};
use crate::http::HttpClient;
use crate::secret::Secret;

/// Where Debian's `chromium` package installs the browser.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// The environment variable that overrides [`DEFAULT_CHROMIUM`].
pub const CHROMIUM_ENV: &str = "GLEANER_CHROMIUM";

/// How long a wait (a selector, a page load) lasts by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The DevTools connection's idle limit (headless_chrome's default, 30 s,
/// closed the connection during long konnector steps).
const IDLE_LIMIT: Duration = Duration::from_secs(600);

/// A limit for messages: `500 ms`, `20 s`.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// How often polling waits look again.
const POLL: Duration = Duration::from_millis(50);

/// The chromium binary to run: `$GLEANER_CHROMIUM` when set and not
/// empty, else [`DEFAULT_CHROMIUM`].
pub fn chromium_path() -> PathBuf {
    match std::env::var_os(CHROMIUM_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CHROMIUM),
    }
}

/// Settings of one browser session.
#[derive(Debug, Clone)]
pub struct BrowserConfig {
    /// The chromium binary (see [`chromium_path`]).
    pub chromium: PathBuf,
    /// Hosts the browser may contact: `host` or `host:port`, as in a
    /// manifest's `hosts`.
    pub allowed_hosts: Vec<String>,
    /// The limit of every wait (selector, page load, navigation).
    pub timeout: Duration,
}

impl BrowserConfig {
    /// The default settings for these hosts.
    pub fn new(allowed_hosts: Vec<String>) -> Self {
        Self {
            chromium: chromium_path(),
            allowed_hosts,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the limit of every wait.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A page's DOM as the browser had it (after scripts ran).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The page's URL, without query string or fragment.
    pub url: String,
    /// The serialized DOM (doctype and `<html>` element), with registered
    /// secrets masked.
    pub html: String,
}

mod sealed {
    /// Gives the text to type; private, so a [`crate::Secret`] cannot be
    /// read through it outside the framework.
    pub trait Sealed {
        fn text(&self) -> &str;
    }
}

/// What [`BrowserSession::fill`] can type: `str`, `String` or a
/// [`Secret`].
pub trait FillText: sealed::Sealed {}

impl sealed::Sealed for str {
    fn text(&self) -> &str {
        self
    }
}
impl FillText for str {}

impl sealed::Sealed for String {
    fn text(&self) -> &str {
        self
    }
}
impl FillText for String {}

impl sealed::Sealed for Secret {
    fn text(&self) -> &str {
        self.expose()
    }
}
impl FillText for Secret {}

/// The processes and files of one session, ended and removed on drop.
struct Resources {
    marker: PathBuf,
    root_pid: Option<u32>,
    browser: Option<Browser>,
    dir: Option<tempfile::TempDir>,
    watcher_stop: Arc<AtomicBool>,
}

impl Resources {
    fn end(&mut self) {
        self.watcher_stop.store(true, Ordering::SeqCst);
        let signalled = procs::kill_session(&self.marker, self.root_pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = procs::session_processes(&self.marker, self.root_pid);
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::error!(pids = ?left, "chromium processes survived SIGKILL");
                break;
            }
            procs::kill_session(&self.marker, self.root_pid);
            std::thread::sleep(Duration::from_millis(10));
        }
        // Dropping the crate's handle reaps the (dead) browser process, but
        // first waits about a second for its shutdown call to fail on the
        // closed connection: done on a thread of its own, so neither close
        // nor a drop on the async runtime waits for it.
        if let Some(browser) = self.browser.take() {
            let reaper = std::thread::Builder::new()
                .name("gleaner-browser-reaper".to_owned())
                .spawn(move || drop(browser));
            if let Err(e) = reaper {
                tracing::debug!(error = %e, "no reaper thread; dropping the browser here");
            }
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove the browser's profile");
            }
        }
        if signalled > 0 {
            tracing::debug!(processes = signalled, "browser closed");
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        if self.dir.is_some() || self.browser.is_some() {
            self.end();
        }
    }
}

/// A running headless chromium, one tab, guarded (see the module doc).
///
/// Dropping it ends every chromium process of the session at once (it
/// blocks for the few milliseconds that takes); [`BrowserSession::close`]
/// does the same off the async runtime.
pub struct BrowserSession {
    resources: Resources,
    tab: Arc<Tab>,
    guard: Arc<Guard>,
    snapshots: Vec<Snapshot>,
    timeout: Duration,
}

fn browser_error(code: ErrorCode, message: String) -> KonnectorError {
    KonnectorError::new(code, message)
}

/// Whether a headless_chrome error means the browser is gone.
fn connection_closed(e: &anyhow::Error) -> bool {
    e.downcast_ref::<headless_chrome::browser::ConnectionClosed>()
        .is_some()
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        rustix::process::geteuid().is_root()
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Installs the host guard on one tab: the interceptor first, then the
/// `Fetch` domain pausing every request at the request stage.
fn install_guard(tab: &Tab, guard: &Arc<Guard>) -> anyhow::Result<()> {
    let g = Arc::clone(guard);
    tab.enable_request_interception(Arc::new(
        move |_transport, _session, event: Fetch::events::RequestPausedEvent| {
            let kind = format!("{:?}", event.params.resource_Type);
            if g.check(&event.params.request.url, &kind) {
                RequestPausedDecision::Continue(None)
            } else {
                RequestPausedDecision::Fail(Fetch::FailRequest {
                    request_id: event.params.request_id,
                    error_reason: Network::ErrorReason::BlockedByClient,
                })
            }
        },
    ))?;
    let patterns = [Fetch::RequestPattern {
        url_pattern: Some("*".to_owned()),
        resource_Type: None,
        request_stage: Some(Fetch::RequestStage::Request),
    }];
    tab.enable_fetch(Some(&patterns), None)?;
    Ok(())
}

/// Guards every tab chromium reports that is not guarded yet, every few
/// milliseconds, until `stop`.
fn watch_tabs(
    tabs: Arc<Mutex<Vec<Arc<Tab>>>>,
    guarded: Arc<Mutex<HashSet<String>>>,
    guard: Arc<Guard>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let list = tabs.lock().map(|t| t.clone()).unwrap_or_default();
        for tab in list {
            let id = tab.get_target_id().clone();
            let fresh = guarded.lock().map(|mut g| g.insert(id)).unwrap_or(false);
            if fresh {
                tracing::warn!(url = %guard::shown(&tab.get_url()), "a page opened a new tab; guarding it");
                if let Err(e) = install_guard(&tab, &guard) {
                    tracing::warn!(error = %e, "could not guard a new tab; closing it");
                    let _ = tab.close(false);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `--host-resolver-rules` value: every host fails to resolve except
/// the allowed ones (chromium applies the rules to IP literals too).
fn resolver_rules(guard: &Guard) -> String {
    let mut rules = String::from("MAP * ~NOTFOUND");
    for name in guard.allow.host_names() {
        rules.push_str(", EXCLUDE ");
        if name.parse::<std::net::Ipv6Addr>().is_ok() {
            rules.push_str(&format!("[{name}]"));
        } else {
            rules.push_str(&name);
        }
    }
    rules
}

fn start(
    config: &BrowserConfig,
    marker: &Path,
    guard: &Arc<Guard>,
    watcher_stop: &Arc<AtomicBool>,
) -> Result<(Browser, Arc<Tab>)> {
    let resolver = format!("--host-resolver-rules={}", resolver_rules(guard));
    let owned = [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--disable-domain-reliability",
        "--no-pings",
        "--block-new-web-contents",
        resolver.as_str(),
    ];
    let args: Vec<&OsStr> = owned.iter().map(OsStr::new).collect();
    let envs = HashMap::from([
        (
            "XDG_CONFIG_HOME".to_owned(),
            marker.join("config").to_string_lossy().into_owned(),
        ),
        (
            "XDG_CACHE_HOME".to_owned(),
            marker.join("cache").to_string_lossy().into_owned(),
        ),
    ]);
    let options = LaunchOptions::default_builder()
        .path(Some(config.chromium.clone()))
        .headless(true)
        .sandbox(!is_root())
        .ignore_certificate_errors(false)
        .user_data_dir(Some(marker.join("profile")))
        .idle_browser_timeout(IDLE_LIMIT)
        .window_size(Some((1280, 800)))
        .args(args)
        // Popups stay blocked (the crate disables the blocker by default).
        .ignore_default_args(vec![OsStr::new("--disable-popup-blocking")])
        .process_envs(Some(envs))
        .build()
        .map_err(|e| {
            browser_error(
                ErrorCode::UnknownError,
                format!("invalid browser launch options: {e}"),
            )
        })?;
    let shown = config.chromium.display();
    let browser = Browser::new(options).map_err(|e| {
        browser_error(
            ErrorCode::UnknownError,
            format!("chromium ({shown}) did not start: {e}"),
        )
    })?;
    let fail = |what: &str, e: anyhow::Error| {
        browser_error(
            ErrorCode::UnknownError,
            format!("chromium ({shown}) started but {what}: {e}"),
        )
    };
    let tab = browser
        .new_tab()
        .map_err(|e| fail("opening a tab failed", e))?;
    install_guard(&tab, guard).map_err(|e| fail("the request guard could not be installed", e))?;
    let guarded = Arc::new(Mutex::new(HashSet::from([tab.get_target_id().clone()])));
    // Tabs chromium had before ours (its initial blank page) or opens
    // later are guarded by the watcher.
    let tabs = Arc::clone(browser.get_tabs());
    let (g, stop) = (Arc::clone(guard), Arc::clone(watcher_stop));
    std::thread::Builder::new()
        .name("gleaner-browser-tabs".to_owned())
        .spawn(move || watch_tabs(tabs, guarded, g, stop))
        .map_err(|e| {
            browser_error(
                ErrorCode::UnknownError,
                format!("cannot start the tab watcher: {e}"),
            )
        })?;
    Ok((browser, tab))
}

/// The serialized DOM, as `Tab::get_content` builds it (without its
/// `unwrap`).
const SERIALIZE_DOM: &str = "(() => { let s = ''; \
    if (document.doctype) s = new XMLSerializer().serializeToString(document.doctype); \
    if (document.documentElement) s += document.documentElement.outerHTML; \
    return s; })()";

/// Evaluates `expression` (awaiting a promise), returning its value as
/// JSON, or the exception's text.
fn eval(
    tab: &Tab,
    expression: &str,
) -> anyhow::Result<std::result::Result<serde_json::Value, String>> {
    let out = tab.call_method(Runtime::Evaluate {
        expression: expression.to_owned(),
        return_by_value: Some(true),
        generate_preview: None,
        silent: Some(true),
        await_promise: Some(true),
        include_command_line_api: None,
        user_gesture: Some(true),
        object_group: None,
        context_id: None,
        throw_on_side_effect: None,
        timeout: None,
        disable_breaks: None,
        repl_mode: None,
        allow_unsafe_eval_blocked_by_csp: None,
        unique_context_id: None,
        serialization_options: None,
    })?;
    if let Some(ex) = out.exception_details {
        let text = ex.exception.and_then(|e| e.description).unwrap_or(ex.text);
        return Ok(Err(text));
    }
    Ok(Ok(out.result.value.unwrap_or(serde_json::Value::Null)))
}

/// Marks the tab's current document, so that [`wait_loaded`] can tell
/// when a navigation has replaced it.
fn mark_old_page(tab: &Tab) -> anyhow::Result<()> {
    eval(tab, "window.__gleanerOldPage = true").map(|_| ())
}

/// Polls until the document marked by [`mark_old_page`] is replaced by one
/// that has finished loading; `Ok(false)` at `deadline`. (The crate's
/// `wait_until_navigated` waits for a `networkAlmostIdle` event that
/// chromium 156 does not send with request interception on.)
fn wait_loaded(tab: &Tab, deadline: Instant) -> anyhow::Result<bool> {
    let probe = "window.__gleanerOldPage === true ? 'old' : document.readyState";
    loop {
        match eval(tab, probe) {
            Ok(Ok(v)) if v == "complete" => return Ok(true),
            Err(e) if connection_closed(&e) => return Err(e),
            // Still the old page, still loading, or between two documents.
            _ => {}
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}

/// Polls for `selector` until `deadline`; `Ok(false)` when it never showed.
fn poll_selector(tab: &Tab, selector: &str, deadline: Instant) -> anyhow::Result<bool> {
    loop {
        match tab.find_element(selector) {
            Ok(_) => return Ok(true),
            Err(e) if connection_closed(&e) => return Err(e),
            // No match yet, or the document changed under the query.
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}

impl BrowserSession {
    /// Starts chromium with `config` and opens one guarded tab.
    ///
    /// A missing binary is `UNKNOWN_ERROR.BROWSER_MISSING`; a binary that
    /// does not start is `UNKNOWN_ERROR` with chromium's complaint.
    pub async fn launch(config: BrowserConfig) -> Result<Self> {
        if !config.chromium.is_file() {
            return Err(KonnectorError::new(
                ErrorCode::BrowserMissing,
                format!(
                    "no chromium at {} (install it with `apt-get install -y chromium`, or set {CHROMIUM_ENV} to its path)",
                    config.chromium.display()
                ),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("gleaner-chromium-")
            .tempdir()
            .map_err(|e| {
                browser_error(
                    ErrorCode::UnknownError,
                    format!("cannot create the browser's temporary profile: {e}"),
                )
            })?;
        let guard = Guard::new(&config.allowed_hosts);
        let timeout = config.timeout;
        let mut resources = Resources {
            marker: dir.path().to_path_buf(),
            root_pid: None,
            browser: None,
            dir: Some(dir),
            watcher_stop: Arc::new(AtomicBool::new(false)),
        };
        let marker = resources.marker.clone();
        let stop = Arc::clone(&resources.watcher_stop);
        let g = Arc::clone(&guard);
        // The launch runs on a blocking thread. Should this future be
        // dropped meanwhile, `resources` (here) ends whatever the thread
        // started, found by its marker, when it is dropped.
        let started = tokio::task::spawn_blocking(move || {
            let started = start(&config, &marker, &g, &stop);
            if stop.load(Ordering::SeqCst) {
                // The launch was abandoned (its future dropped) and its
                // resources already ended: end what started since.
                drop(started);
                procs::kill_session(&marker, None);
                let _ = std::fs::remove_dir_all(&marker);
                return Err(browser_error(
                    ErrorCode::UnknownError,
                    "the browser launch was abandoned".to_owned(),
                ));
            }
            started
        })
        .await
        .map_err(|e| {
            browser_error(
                ErrorCode::UnknownError,
                format!("the browser launch panicked: {e}"),
            )
        })?;
        let (browser, tab) = started?;
        resources.root_pid = browser.get_process_id();
        resources.browser = Some(browser);
        tracing::info!(pid = ?resources.root_pid, "browser started");
        Ok(Self {
            resources,
            tab,
            guard,
            snapshots: Vec::new(),
            timeout,
        })
    }

    /// Runs `f` on the tab in a blocking thread, under the session's time
    /// limit plus a margin (the crate's calls have their own limits; this
    /// one keeps the run's future from hanging on a stuck browser).
    async fn blocking<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tab) -> Result<T> + Send + 'static,
    {
        let tab = Arc::clone(&self.tab);
        let limit = self.timeout + Duration::from_secs(10);
        match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || f(&tab))).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(browser_error(
                ErrorCode::UnknownError,
                format!("the browser call ({what}) panicked: {e}"),
            )),
            Err(_) => Err(browser_error(
                ErrorCode::VendorDown,
                format!(
                    "the browser did not answer within {} ({what})",
                    human(limit)
                ),
            )),
        }
    }

    /// The page's URL without query string, for messages.
    fn here(tab: &Tab) -> String {
        guard::shown(&tab.get_url())
    }

    fn failed(tab: &Tab, what: &str, e: &anyhow::Error) -> KonnectorError {
        if connection_closed(e) {
            browser_error(
                ErrorCode::VendorDown,
                format!("the browser closed (crashed or killed) while {what}"),
            )
        } else {
            browser_error(
                ErrorCode::UnknownError,
                format!(
                    "the browser failed while {what} on {}: {e}",
                    Self::here(tab)
                ),
            )
        }
    }

    /// Opens `url` in the tab and waits until it has loaded.
    ///
    /// A URL the guard refuses is `UNKNOWN_ERROR.HOST_NOT_ALLOWED` (and is
    /// listed in [`BrowserSession::refused`]); one that cannot be reached
    /// or does not load in time is `VENDOR_DOWN`.
    pub async fn goto(&self, url: &str) -> Result<()> {
        let shown = guard::shown(url);
        if let guard::Verdict::Refuse(why) = guard::verdict(&self.guard.allow, url) {
            self.guard.check(url, "Document");
            return Err(browser_error(
                ErrorCode::HostNotAllowed,
                format!("the browser refused to open {shown}: {why}"),
            ));
        }
        let url = url.to_owned();
        let timeout = self.timeout;
        tracing::debug!(url = %shown, "browser goto");
        self.blocking("opening a page", move |tab| {
            mark_old_page(tab).map_err(|e| Self::failed(tab, "opening a page", &e))?;
            if let Err(e) = tab.navigate_to(&url) {
                if connection_closed(&e) {
                    return Err(Self::failed(tab, "opening a page", &e));
                }
                let text = e.to_string();
                let code = if text.contains("ERR_BLOCKED_BY_CLIENT") {
                    ErrorCode::HostNotAllowed
                } else {
                    ErrorCode::VendorDown
                };
                return Err(browser_error(
                    code,
                    format!("{shown} could not be opened: {text}"),
                ));
            }
            let loaded = wait_loaded(tab, Instant::now() + timeout)
                .map_err(|e| Self::failed(tab, "loading a page", &e))?;
            if loaded {
                Ok(())
            } else {
                Err(browser_error(
                    ErrorCode::VendorDown,
                    format!("{shown} did not finish loading within {}", human(timeout)),
                ))
            }
        })
        .await
    }

    /// Waits until an element matches `selector`.
    ///
    /// None within the time limit is `UNKNOWN_ERROR.PAGE_CHANGED` naming
    /// the selector and the page.
    pub async fn wait_for(&self, selector: &str) -> Result<()> {
        let selector = selector.to_owned();
        let timeout = self.timeout;
        self.blocking("waiting for an element", move |tab| {
            let found = poll_selector(tab, &selector, Instant::now() + timeout)
                .map_err(|e| Self::failed(tab, "waiting for an element", &e))?;
            if found {
                Ok(())
            } else {
                Err(Self::missing(tab, &selector, timeout))
            }
        })
        .await
    }

    fn missing(tab: &Tab, selector: &str, timeout: Duration) -> KonnectorError {
        KonnectorError::page_changed(format!(
            "no element matches `{selector}` on {} (waited {})",
            Self::here(tab),
            human(timeout)
        ))
    }

    /// Types `value` into the element `selector` (waited for), replacing
    /// its content. A [`Secret`] is typed without ever being logged.
    pub async fn fill<T: FillText + ?Sized>(&self, selector: &str, value: &T) -> Result<()> {
        let text = zeroize::Zeroizing::new(value.text().to_owned());
        let selector = selector.to_owned();
        let timeout = self.timeout;
        self.blocking("filling a field", move |tab| {
            if !poll_selector(tab, &selector, Instant::now() + timeout)
                .map_err(|e| Self::failed(tab, "filling a field", &e))?
            {
                return Err(Self::missing(tab, &selector, timeout));
            }
            let typed = (|| -> anyhow::Result<()> {
                let element = tab.find_element(&selector)?;
                element.call_js_fn(
                    "function () { this.focus(); if ('value' in this) { this.value = ''; } }",
                    Vec::new(),
                    false,
                )?;
                tab.call_method(Input::InsertText {
                    text: text.as_str().to_owned(),
                })?;
                Ok(())
            })();
            typed.map_err(|e| Self::failed(tab, &format!("filling `{selector}`"), &e))?;
            tracing::debug!(selector = %selector, "browser field filled");
            Ok(())
        })
        .await
    }

    /// Clicks the element `selector` (waited for). Follow it with
    /// [`BrowserSession::wait_for_navigation`] when the click loads a page.
    pub async fn click(&self, selector: &str) -> Result<()> {
        let selector = selector.to_owned();
        let timeout = self.timeout;
        self.blocking("clicking", move |tab| {
            if !poll_selector(tab, &selector, Instant::now() + timeout)
                .map_err(|e| Self::failed(tab, "clicking", &e))?
            {
                return Err(Self::missing(tab, &selector, timeout));
            }
            let clicked = (|| -> anyhow::Result<()> {
                mark_old_page(tab)?;
                let element = tab.find_element(&selector)?;
                if element.click().is_err() {
                    // Hidden or zero-sized: a script click still fires.
                    element.call_js_fn("function () { this.click(); }", Vec::new(), false)?;
                }
                Ok(())
            })();
            clicked.map_err(|e| Self::failed(tab, &format!("clicking `{selector}`"), &e))?;
            tracing::debug!(selector = %selector, "browser click");
            Ok(())
        })
        .await
    }

    /// Waits until the page [`BrowserSession::click`] left is replaced by
    /// a new one that has finished loading. None within the time limit is
    /// `VENDOR_DOWN` naming the page still shown.
    pub async fn wait_for_navigation(&self) -> Result<()> {
        let timeout = self.timeout;
        self.blocking("waiting for a new page", move |tab| {
            let loaded = wait_loaded(tab, Instant::now() + timeout)
                .map_err(|e| Self::failed(tab, "waiting for a new page", &e))?;
            if loaded {
                Ok(())
            } else {
                Err(browser_error(
                    ErrorCode::VendorDown,
                    format!(
                        "no new page loaded within {} (still on {})",
                        human(timeout),
                        Self::here(tab)
                    ),
                ))
            }
        })
        .await
    }

    /// The page's current URL (query string included: do not log it).
    pub fn url(&self) -> String {
        self.tab.get_url()
    }

    /// The page's DOM as HTML, after its scripts ran.
    pub async fn html(&self) -> Result<String> {
        self.blocking("reading the page", |tab| match eval(tab, SERIALIZE_DOM) {
            Ok(Ok(serde_json::Value::String(html))) => Ok(html),
            Ok(Ok(other)) => Err(browser_error(
                ErrorCode::UnknownError,
                format!("reading {} gave {} instead of HTML", Self::here(tab), other),
            )),
            Ok(Err(ex)) => Err(browser_error(
                ErrorCode::UnknownError,
                format!("reading {} failed: {ex}", Self::here(tab)),
            )),
            Err(e) => Err(Self::failed(tab, "reading the page", &e)),
        })
        .await
    }

    /// Records the page's URL and DOM (registered secrets masked) in the
    /// session's snapshots, and returns it.
    pub async fn snapshot(&mut self) -> Result<Snapshot> {
        let html = self.html().await?;
        let html = match crate::redact::scrub(&html) {
            std::borrow::Cow::Borrowed(_) => html,
            std::borrow::Cow::Owned(s) => s,
        };
        let snapshot = Snapshot {
            url: guard::shown(&self.tab.get_url()),
            html,
        };
        self.snapshots.push(snapshot.clone());
        Ok(snapshot)
    }

    /// The snapshots taken so far, oldest first.
    pub fn snapshots(&self) -> &[Snapshot] {
        &self.snapshots
    }

    /// Evaluates a JavaScript expression in the page (a promise is
    /// awaited) and returns its value as JSON (`null` for `undefined`).
    /// A script that throws is `UNKNOWN_ERROR` with the exception's text.
    pub async fn evaluate(&self, js: &str) -> Result<serde_json::Value> {
        let js = js.to_owned();
        self.blocking("running a script", move |tab| match eval(tab, &js) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(ex)) => Err(browser_error(
                ErrorCode::UnknownError,
                format!("a script failed on {}: {ex}", Self::here(tab)),
            )),
            Err(e) => Err(Self::failed(tab, "running a script", &e)),
        })
        .await
    }

    /// Copies the browser's cookies of allowed hosts into `http`'s cookie
    /// jar (every path, session cookies included), so that downloads and
    /// APIs go over plain HTTP in the logged-in session. Returns how many
    /// were copied.
    pub async fn cookies_into(&self, http: &HttpClient) -> Result<usize> {
        let cookies = self
            .blocking("reading cookies", |tab| {
                #[allow(deprecated)]
                let all = tab
                    .call_method(Network::GetAllCookies(None))
                    .map_err(|e| Self::failed(tab, "reading cookies", &e))?;
                Ok(all
                    .cookies
                    .into_iter()
                    .map(|c| BrowserCookie {
                        expires: (!c.session && c.expires > 0.0).then_some(c.expires),
                        name: c.name,
                        value: c.value,
                        domain: c.domain,
                        path: c.path,
                        secure: c.secure,
                        http_only: c.http_only,
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        let copied = cookies::copy_into(http, &self.guard.allow, &cookies)?;
        tracing::debug!(
            copied,
            seen = cookies.len(),
            "browser cookies copied to the HTTP client"
        );
        Ok(copied)
    }

    /// The requests the guard refused so far (URLs without query string),
    /// in order.
    pub fn refused(&self) -> Vec<String> {
        self.guard.refused()
    }

    /// The session's unique temporary directory: every chromium process
    /// of the session has it on its command line (see [`procs`]).
    pub fn marker(&self) -> &Path {
        &self.resources.marker
    }

    /// The browser process's id.
    pub fn pid(&self) -> Option<u32> {
        self.resources.root_pid
    }

    /// The session's live chromium processes.
    pub fn processes(&self) -> BTreeSet<u32> {
        procs::session_processes(&self.resources.marker, self.resources.root_pid)
    }

    /// The memory the session's processes hold now (see
    /// [`procs::tree_memory`]).
    pub fn memory(&self) -> procs::TreeMemory {
        procs::tree_memory(&self.processes())
    }

    /// Ends every chromium process of the session and removes its profile,
    /// off the async runtime. Dropping the session does the same.
    pub async fn close(self) {
        let Self {
            mut resources, tab, ..
        } = self;
        let ended = tokio::task::spawn_blocking(move || {
            drop(tab);
            resources.end();
        })
        .await;
        if let Err(e) = ended {
            tracing::error!(error = %e, "closing the browser panicked");
        }
    }
}

impl std::fmt::Debug for BrowserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSession")
            .field("pid", &self.resources.root_pid)
            .field("marker", &self.resources.marker)
            .field("snapshots", &self.snapshots.len())
            .finish_non_exhaustive()
    }
}
