//! The headless browser against loopback servers: a login that only works
//! with scripts, cookies handed to the HTTP client, the host guard, DOM
//! snapshots, and no chromium process left behind on any path.
//!
//! Needs Debian's chromium (`apt-get install -y chromium`). Without it each
//! test prints one line and returns, except under `CI`, where it fails.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gleaner_framework::browser::{BrowserConfig, BrowserSession, chromium_path, procs};
use gleaner_framework::http::{HttpClient, HttpConfig};
use gleaner_framework::{ErrorCode, Secret};

const USER: &str = "alice";
const PASSWORD: &str = "pw-7c1e9a correct horse";
const SESSION: &str = "sid-5b2f8d11e0";

/// One browser test at a time: each starts a whole chromium, and the
/// leak checks count processes machine-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether chromium is here; prints the skip line (or fails under CI).
fn chromium_or_skip() -> bool {
    let path = chromium_path();
    if path.is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs chromium at {} (apt-get install -y chromium)",
        path.display()
    );
    println!("skipped: chromium not installed (apt-get install -y chromium)");
    false
}

/// The token the login page's script computes; the server checks it, so a
/// client without scripts cannot log in even if it guesses the form.
fn token(user: &str) -> String {
    let sum: u32 = user.bytes().map(u32::from).sum();
    format!("js-{}-{}", user.len(), sum * 7)
}

const LOGIN: &str = r#"<!doctype html>
<html><head><title>Login</title></head><body>
<form id="login" method="post" action="/nowhere">
  <input id="user" name="user">
  <input id="password" name="password" type="password">
  <input id="token" name="token" type="hidden">
</form>
<noscript>This site needs JavaScript.</noscript>
<script>
  const form = document.getElementById('login');
  form.action = '/session';
  const button = document.createElement('button');
  button.id = 'go';
  button.type = 'submit';
  button.textContent = 'Log in';
  form.appendChild(button);
  form.addEventListener('submit', () => {
    const user = document.getElementById('user').value;
    let sum = 0;
    for (const c of user) sum += c.charCodeAt(0);
    document.getElementById('token').value = 'js-' + user.length + '-' + (sum * 7);
  });
</script>
</body></html>"#;

#[derive(Clone)]
struct App {
    other: u16,
}

#[derive(serde::Deserialize)]
struct Login {
    user: String,
    password: String,
    token: String,
}

fn logged_in(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(';').any(|c| c.trim() == format!("sid={SESSION}")))
}

async fn session(Form(f): Form<Login>) -> Response {
    if f.user == USER && f.password == PASSWORD && f.token == token(&f.user) {
        (
            [(
                header::SET_COOKIE,
                format!("sid={SESSION}; Path=/; HttpOnly; SameSite=Lax"),
            )],
            Redirect::to("/home"),
        )
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Html("<p id=\"error\">Wrong login</p>"),
        )
            .into_response()
    }
}

async fn home(headers: HeaderMap) -> Response {
    if !logged_in(&headers) {
        return Redirect::to("/login").into_response();
    }
    Html(
        r#"<!doctype html><html><body><h1 id="welcome">Welcome</h1>
<a id="bill" href="/bills/1.pdf">Bill</a>
<script>
  const p = document.createElement('p');
  p.id = 'rendered';
  p.textContent = 'rendered by script';
  document.body.appendChild(p);
</script></body></html>"#,
    )
    .into_response()
}

async fn bill(headers: HeaderMap) -> Response {
    if !logged_in(&headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/pdf")],
        b"%PDF-1.4\n% a bill\n%%EOF\n".to_vec(),
    )
        .into_response()
}

async fn leaky(State(app): State<App>) -> Html<String> {
    let other = app.other;
    Html(format!(
        r#"<!doctype html><html><body>
<img id="pixel" src="http://127.0.0.2:{other}/pixel.png?user=alice">
<iframe src="http://127.0.0.1:{other}/frame"></iframe>
<script>
  fetch('http://other.invalid/collect?x=1').catch(() => {{}});
  fetch('http://127.0.0.1:{other}/api').then(
    () => document.body.dataset.fetch = 'sent',
    () => document.body.dataset.fetch = 'refused');
</script>
<button id="popup" onclick="window.open('http://127.0.0.2:{other}/popup')">open</button>
<p id="ready">ready</p>
</body></html>"#
    ))
}

/// The provider's server and an undeclared one that counts its hits.
struct Servers {
    base: String,
    port: u16,
    other_hits: Arc<AtomicUsize>,
}

async fn serve(addr: &str, app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    local
}

async fn servers() -> Servers {
    let other_hits = Arc::new(AtomicUsize::new(0));
    let hits = Arc::clone(&other_hits);
    let counter = Router::new().fallback(move || {
        let hits = Arc::clone(&hits);
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            "counted"
        }
    });
    // The undeclared server listens on 127.0.0.1 and 127.0.0.2, same port.
    let other = serve("127.0.0.1:0", counter.clone()).await;
    serve(&format!("127.0.0.2:{}", other.port()), counter).await;
    let app = Router::new()
        .route("/login", get(|| async { Html(LOGIN) }))
        .route("/session", post(session))
        .route("/home", get(home))
        .route("/bills/1.pdf", get(bill))
        .route("/leaky", get(leaky))
        .route(
            "/slow",
            get(|| async { Html("<!doctype html><p id=\"here\">no form</p>") }),
        )
        .with_state(App {
            other: other.port(),
        });
    let addr = serve("127.0.0.1:0", app).await;
    Servers {
        base: format!("http://127.0.0.1:{}", addr.port()),
        port: addr.port(),
        other_hits,
    }
}

fn config(s: &Servers) -> BrowserConfig {
    BrowserConfig::new(vec![format!("127.0.0.1:{}", s.port)]).with_timeout(Duration::from_secs(10))
}

/// Live chromium processes of every Gleaner session on the machine.
fn gleaner_chromiums() -> usize {
    procs::session_processes(&std::env::temp_dir().join("gleaner-chromium-"), None).len()
}

/// The live processes of a session, found by its marker (the session
/// waits for them to go before its drop or close returns).
async fn left_after(marker: &PathBuf) -> usize {
    procs::session_processes(marker, None).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_login_hands_its_cookies_to_plain_http() {
    if !chromium_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let s = servers().await;
    let before = gleaner_chromiums();
    let b = BrowserSession::launch(config(&s)).await.unwrap();
    let marker = b.marker().to_path_buf();
    assert!(
        b.processes().len() >= 3,
        "a browser, zygotes and renderers: {:?}",
        b.processes()
    );

    // Without scripts the form goes nowhere: the server refuses it.
    let bare = HttpClient::new(HttpConfig {
        allowed_hosts: vec![format!("127.0.0.1:{}", s.port)],
        ..HttpConfig::default()
    })
    .unwrap();
    let page = bare.get(&format!("{}/login", s.base)).await.unwrap().text();
    assert!(
        !page.contains("id=\"go\""),
        "the button comes from the script"
    );
    let direct = bare.get(&format!("{}/bills/1.pdf", s.base)).await.unwrap();
    assert_eq!(direct.status, 403);

    b.goto(&format!("{}/login", s.base)).await.unwrap();
    b.wait_for("#go").await.unwrap();
    b.fill("#user", USER).await.unwrap();
    let password = Secret::new(PASSWORD);
    b.fill("#password", &password).await.unwrap();
    b.click("#go").await.unwrap();
    b.wait_for_navigation().await.unwrap();
    b.wait_for("#welcome").await.unwrap();
    assert!(b.url().ends_with("/home"), "{}", b.url());

    let http = HttpClient::new(HttpConfig {
        allowed_hosts: vec![format!("127.0.0.1:{}", s.port)],
        ..HttpConfig::default()
    })
    .unwrap();
    assert_eq!(b.cookies_into(&http).await.unwrap(), 1);
    let pdf = http.get(&format!("{}/bills/1.pdf", s.base)).await.unwrap();
    assert_eq!(pdf.status, 200);
    assert!(pdf.body.starts_with(b"%PDF-1.4"));
    assert!(b.refused().is_empty(), "{:?}", b.refused());

    b.close().await;
    assert_eq!(left_after(&marker).await, 0);
    assert!(!marker.exists(), "the temporary profile is removed");
    assert!(gleaner_chromiums() <= before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_undeclared_hosts_are_refused_before_they_leave() {
    if !chromium_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let s = servers().await;
    let b = BrowserSession::launch(config(&s)).await.unwrap();
    b.goto(&format!("{}/leaky", s.base)).await.unwrap();
    b.wait_for("#ready").await.unwrap();
    // Give the page's requests time to be made (and refused).
    let mut outcome = serde_json::Value::Null;
    for _ in 0..100 {
        outcome = b
            .evaluate("document.body.dataset.fetch || null")
            .await
            .unwrap();
        if !outcome.is_null() && b.refused().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outcome, "refused", "the page's fetch must fail");
    let refused = b.refused();
    let other = s.other_hits.load(Ordering::SeqCst);
    assert_eq!(
        other, 0,
        "the undeclared server was reached; refused: {refused:?}"
    );
    for expected in [
        "http://127.0.0.2:",
        "http://other.invalid/collect",
        "/frame",
        "/api",
    ] {
        assert!(
            refused.iter().any(|u| u.contains(expected)),
            "{expected} not in {refused:?}"
        );
    }
    assert!(
        refused.iter().all(|u| !u.contains('?')),
        "refusals are listed without queries: {refused:?}"
    );

    // A popup the page opens (on a click, so the popup blocker lets it)
    // to an undeclared host reaches nothing either.
    b.click("#popup").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        s.other_hits.load(Ordering::SeqCst),
        0,
        "a popup reached the undeclared server; refused: {:?}",
        b.refused()
    );

    // Opening an undeclared page is refused up front, with its own code.
    let e = b.goto("http://127.0.0.2:9/").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::HostNotAllowed, "{e}");
    let marker = b.marker().to_path_buf();
    b.close().await;
    assert_eq!(left_after(&marker).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_the_dom_after_scripts_ran() {
    if !chromium_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let s = servers().await;
    let mut b = BrowserSession::launch(config(&s)).await.unwrap();
    b.goto(&format!("{}/login?next=%2Fhome", s.base))
        .await
        .unwrap();
    let snap = b.snapshot().await.unwrap();
    assert_eq!(snap.url, format!("{}/login", s.base));
    assert!(
        snap.html.starts_with("<!DOCTYPE html>"),
        "{}",
        &snap.html[..40]
    );
    assert!(
        snap.html.contains("id=\"go\""),
        "the script's button is in the DOM"
    );
    assert!(snap.html.contains("action=\"/session\""));
    b.fill("#password", &Secret::new(PASSWORD)).await.unwrap();
    let value = b
        .evaluate("document.getElementById('password').value.length")
        .await
        .unwrap();
    assert_eq!(value, PASSWORD.len());
    let snap = b.snapshot().await.unwrap();
    assert!(!snap.html.contains(PASSWORD));
    assert_eq!(b.snapshots().len(), 2);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_selector_names_the_selector_and_the_page() {
    if !chromium_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let s = servers().await;
    let cfg = config(&s).with_timeout(Duration::from_millis(500));
    let mut marker = PathBuf::new();
    // A konnector step that fails: the session is dropped with the error.
    let failed: gleaner_framework::Result<()> = async {
        let b = BrowserSession::launch(cfg).await?;
        marker = b.marker().to_path_buf();
        b.goto(&format!("{}/slow?token=abc", s.base)).await?;
        b.wait_for("form#login").await?;
        Ok(())
    }
    .await;
    let e = failed.unwrap_err();
    assert_eq!(e.code, ErrorCode::PageChanged, "{e}");
    assert!(e.message.contains("`form#login`"), "{}", e.message);
    assert!(
        e.message.contains(&format!("{}/slow", s.base)),
        "{}",
        e.message
    );
    assert!(!e.message.contains("token=abc"), "{}", e.message);
    assert!(marker.as_os_str().len() > 1);
    assert_eq!(left_after(&marker).await, 0, "left after an error");
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_or_a_cancelled_run_leaves_no_chromium() {
    if !chromium_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let s = servers().await;

    // The run's time limit: the future holding the session is dropped
    // while it waits.
    let b = BrowserSession::launch(config(&s)).await.unwrap();
    let marker = b.marker().to_path_buf();
    assert!(!b.processes().is_empty());
    let url = format!("{}/slow", s.base);
    let timed_out = tokio::time::timeout(Duration::from_millis(800), async move {
        b.goto(&url).await?;
        b.wait_for("#never").await
    })
    .await;
    assert!(timed_out.is_err(), "the wait outlived the limit");
    assert_eq!(left_after(&marker).await, 0, "left after a timeout");

    // A cancelled task (a scheduler shutdown): aborted mid-wait.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cfg = config(&s);
    let url = format!("{}/slow", s.base);
    let task = tokio::spawn(async move {
        let b = BrowserSession::launch(cfg).await?;
        let _ = tx.send(b.marker().to_path_buf());
        b.goto(&url).await?;
        b.wait_for("#never").await
    });
    let marker = rx.await.unwrap();
    assert!(!procs::session_processes(&marker, None).is_empty());
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(left_after(&marker).await, 0, "left after a cancellation");

    // A launch abandoned half-way: whatever it started ends too.
    let before = gleaner_chromiums();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(150),
        BrowserSession::launch(config(&s)),
    )
    .await;
    drop(abandoned);
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = gleaner_chromiums();
        if left <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left <= before,
        "{left} chromium processes left after an abandoned launch"
    );
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_typed_error() {
    let mut cfg = BrowserConfig::new(vec!["127.0.0.1".to_owned()]);
    cfg.chromium = PathBuf::from("/nonexistent/chromium");
    let e = BrowserSession::launch(cfg).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::BrowserMissing);
    assert_eq!(e.code.as_str(), "UNKNOWN_ERROR.BROWSER_MISSING");
    assert!(e.message.contains("/nonexistent/chromium"), "{}", e.message);
    assert!(
        e.message.contains("apt-get install -y chromium"),
        "{}",
        e.message
    );
}
