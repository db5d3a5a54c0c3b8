//! Cozy Node konnectors run unchanged: the test konnector under
//! `fixtures/cozy/freemobile/` (cozy-konnector-libs 4.x, bundled like a
//! build branch) installed with `gleaner konnectors install`, run by
//! `gleaner run` and by the daemon against the Free Mobile sandbox; and the
//! failure konnectors (`crash`, `hang`, `leak`) beside it.
//!
//! The bundle is built by `.ci/run` (`npm ci && npm run build`). Outside CI
//! a missing bundle is built here when npm is installed; without node or
//! npm each test prints one `skipped:` line. Under `CI` both are required.
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

mod web_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gleaner_konnectors::telco::free_mobile::sandbox::{
    LOGIN, LOGIN_2FA, PASSWORD, Sandbox, Scenario,
};
use web_common::{Home, Served, Web};

fn fixture(name: &str) -> PathBuf {
    gleaner_testing::cozy::fixture(name)
}

fn has(program: &str) -> bool {
    gleaner_testing::cozy::has(program)
}

/// The test konnector's bundle, built once per test process when missing.
fn bundle() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BUILT.get_or_init(gleaner_testing::cozy::freemobile_bundle);
    match result {
        Ok(p) => Some(p.clone()),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the Cozy konnector tests need node and the bundle under CI: {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn node_or_skip() -> bool {
    if has("node") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the Cozy konnector tests need node under CI"
    );
    eprintln!("skipped: node not found (apt-get install -y nodejs)");
    false
}

fn install(home: &Home, build: &Path, extra: &[&str]) -> String {
    let mut args = vec!["konnectors", "install", build.to_str().unwrap()];
    args.extend_from_slice(extra);
    home.ok(&args)
}

fn add(home: &Home, label: &str, login: &str, password: &str, sandbox: &Sandbox) {
    home.ok(&[
        "accounts",
        "add",
        "freemobile-node",
        "--field",
        &format!("login={login}"),
        "--field",
        &format!("password={password}"),
        "--field",
        &format!("baseUrl={}", sandbox.base_url()),
        "--label",
        label,
    ]);
}

/// The exported documents of a doctype.
fn docs_of(home: &Home, doctype: &str) -> Vec<serde_json::Value> {
    home.export()
        .into_iter()
        .filter(|d| d["doctype"] == doctype)
        .map(|d| d["doc"].clone())
        .collect()
}

fn bills(home: &Home) -> usize {
    docs_of(home, "io.cozy.bills").len()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bills_and_pdfs_land_once_and_the_listing_names_the_origin() {
    let Some(build) = bundle() else { return };
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    let out = install(&home, &build, &["--allow-host", "127.0.0.1"]);
    assert!(out.contains("may contact: 127.0.0.1"), "{out}");
    let list = home.ok(&["konnectors"]);
    assert!(
        list.contains("freemobile-node") && list.contains("Cozy Node konnector"),
        "{list}"
    );
    add(&home, "fm", LOGIN, PASSWORD, &sandbox);
    let first = home.ok(&["run", "fm"]);
    assert!(first.contains("20 files downloaded"), "{first}");
    let pdfs: Vec<PathBuf> = home
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    assert_eq!(pdfs.len(), 20, "{pdfs:?}");
    for pdf in &pdfs {
        let bytes = std::fs::read(pdf).unwrap();
        assert!(bytes.starts_with(b"%PDF-"), "{}", pdf.display());
        assert!(
            pdf.starts_with(home.path().join("files/Free Mobile (Gleaner test)")),
            "{}",
            pdf.display()
        );
    }
    let bill_docs = docs_of(&home, "io.cozy.bills");
    assert_eq!(bill_docs.len(), 20, "{bill_docs:?}");
    // Each bill points at its file, as saveBills links them.
    let files = docs_of(&home, "io.cozy.files");
    assert_eq!(files.len(), 20);
    for bill in &bill_docs {
        let invoice = bill["invoice"].as_str().unwrap_or_default();
        let id = invoice.strip_prefix("io.cozy.files:").unwrap_or_default();
        assert!(
            files.iter().any(|f| f["_id"] == id),
            "bill {bill} points at no stored file"
        );
    }
    let pdf_downloads = sandbox.pdf_downloads();
    let second = home.ok(&["run", "fm"]);
    assert!(second.contains("0 files downloaded"), "{second}");
    assert_eq!(bills(&home), 20, "a second run creates nothing");
    assert_eq!(home.files().len(), 20);
    assert_eq!(
        sandbox.pdf_downloads(),
        pdf_downloads,
        "no PDF fetched again"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_login_failed_and_stops_automatic_runs() {
    let Some(build) = bundle() else { return };
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    install(&home, &build, &["--any-host"]);
    add(&home, "wrong", LOGIN, "not-the-password", &sandbox);
    let out = home.gleaner(&["run", "wrong"]);
    assert!(!out.status.success());
    let all = text(&out);
    assert!(all.contains("LOGIN_FAILED"), "{all}");
    assert!(!all.contains("not-the-password"), "{all}");
    let schedule = home.ok(&["schedule"]);
    assert!(
        schedule.contains("skipped until fixed (LOGIN_FAILED)"),
        "{schedule}"
    );
    let status = home.ok(&["status"]);
    assert!(status.contains("NEEDS YOU (LOGIN_FAILED)"), "{status}");
    assert_eq!(bills(&home), 0);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_it_and_gleaner_2fa_answers_its_code() {
    let Some(build) = bundle() else { return };
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    // Installed after the daemon started: it finds it when the job comes.
    let mut daemon = home.command(&["daemon"]).spawn().unwrap();
    install(&home, &build, &["--allow-host", "127.0.0.1"]);
    add(&home, "otp", LOGIN_2FA, PASSWORD, &sandbox);
    home.ok(&["run", "--detach", "otp"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let code = loop {
        assert!(Instant::now() < deadline, "no code was asked for");
        if let Some(code) = sandbox.last_email_code() {
            let status = home.ok(&["status"]);
            if status.contains("WAITING FOR YOU") {
                break code;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    home.ok(&["2fa", "otp", &code]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(Instant::now() < deadline, "the run did not end");
        let jobs = home.ok(&["jobs", "--json"]);
        if jobs.contains("\"done\"") {
            break;
        }
        assert!(!jobs.contains("\"errored\""), "{jobs}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(bills(&home) > 0);
    assert_eq!(sandbox.verification_posts(), 1);
    terminate(&daemon);
    let _ = daemon.wait();
    sandbox.shutdown().await;
}

fn terminate(child: &std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// Waits until the page (which reloads itself on the run's events)
/// contains `text`.
fn wait_live(web: &Web, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(html) = web.tab.get_content()
            && html.contains(text)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{text}` never showed on {}:\n{}",
            web.current_url(),
            web.tab.get_content().unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_from_the_web_its_code_is_asked_on_the_account_page() {
    let Some(build) = bundle() else { return };
    if !web_common::chromium_or_skip() {
        return;
    }
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    install(&home, &build, &["--allow-host", "127.0.0.1"]);
    let served = Served::start(&home, &[], &[]);
    let web = Web::launch(true);
    web.login(&served);
    web.goto(&served.url("/konnectors"));
    assert!(
        web.html().contains("Free Mobile (Gleaner test)"),
        "{}",
        web.html()
    );
    web.goto(&served.url("/konnectors/freemobile-node"));
    web.wait_for("#field-login")
        .fill("#field-login", LOGIN_2FA)
        .fill("#field-password", PASSWORD)
        .fill("#field-baseUrl", &sandbox.base_url())
        .fill("#field-label", "web");
    // Enabling queues the first run; the account page asks for the code
    // when the konnector's waitForTwoFaCode sets the account's state.
    web.click("#enable");
    wait_live(&web, "Type it here:");
    web.wait_for("form#twofa #code").wait_for("#send-code");
    let code = sandbox.last_email_code().expect("a code was emailed");
    web.fill("#code", &code);
    web.click("#send-code");
    wait_live(&web, "No run is going.");
    assert!(bills(&home) > 0, "{}", web.html());
    assert_eq!(sandbox.verification_posts(), 1);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_refuses_the_sandbox_and_names_it() {
    let Some(build) = bundle() else { return };
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    install(&home, &build, &["--allow-host", "mobile.free.fr"]);
    add(&home, "fenced", LOGIN, PASSWORD, &sandbox);
    let out = home.gleaner(&["run", "fenced"]);
    assert!(!out.status.success());
    let all = text(&out);
    let port = sandbox
        .base_url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    assert!(all.contains("HOST_NOT_ALLOWED"), "{all}");
    assert!(all.contains(&format!("127.0.0.1:{port}")), "{all}");
    assert_eq!(sandbox.requests(), 0, "the proxy let a request through");
    assert_eq!(bills(&home), 0);
    sandbox.shutdown().await;
}

/// Installs a failure konnector of `fixtures/cozy/`, adds an account `k`
/// with `fields`, runs it (`gleaner -vv run k`), which must fail. Returns
/// the data directory, everything printed, and how long the run took.
fn failing_run(
    name: &str,
    install_args: &[&str],
    fields: &[&str],
) -> Option<(Home, String, Duration)> {
    if !node_or_skip() {
        return None;
    }
    let home = Home::new();
    install(&home, &fixture(name), install_args);
    let mut add = vec!["accounts", "add", "", "--label", "k"];
    let slug = format!("{name}-node");
    add[2] = &slug;
    let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    for f in &fields {
        add.extend(["--field", f.as_str()]);
    }
    home.ok(&add);
    let started = Instant::now();
    let out = home.gleaner(&["-vv", "run", "k"]);
    let took = started.elapsed();
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    Some((home, all, took))
}

#[test]
fn a_crash_without_a_message_is_a_clear_error() {
    let Some((_home, all, _)) = failing_run("crash", &["--any-host"], &["login=x"]) else {
        return;
    };
    assert!(all.contains("UNKNOWN_ERROR"), "{all}");
    assert!(
        all.contains("exited with status 1 without saying why"),
        "{all}"
    );
}

#[test]
fn a_hang_is_killed_at_the_time_limit_with_its_children() {
    let Some((home, all, took)) =
        failing_run("hang", &["--any-host", "--timeout", "3"], &["login=x"])
    else {
        return;
    };
    assert!(all.contains("VENDOR_DOWN.TIMEOUT"), "{all}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // The konnector and the child it started are gone.
    let install_dir = home.path().join("konnectors/hang-node");
    assert!(
        processes_with(install_dir.to_str().unwrap()).is_empty(),
        "a konnector process outlived its run"
    );
    assert!(
        processes_with("gleaner-hang-child").is_empty(),
        "the konnector's child outlived its run"
    );
}

#[test]
fn what_a_konnector_prints_is_redacted() {
    let secret = "Leaky-Pa55word-0f-the-test";
    let password = format!("password={secret}");
    let Some((home, all, _)) = failing_run("leak", &["--any-host"], &["login=someone", &password])
    else {
        return;
    };
    assert!(all.contains("LOGIN_FAILED"), "{all}");
    assert!(
        all.contains("the password is"),
        "the konnector's lines are logged: {all}"
    );
    assert!(!all.contains(secret), "{all}");
    let jobs = home.ok(&["jobs", "--json"]);
    assert!(!jobs.contains(secret), "{jobs}");
    // The token the run gave it never shows either (the konnector prints
    // it after `token=`).
    assert!(all.contains("token=[REDACTED]"), "{all}");
    for line in all.lines().filter(|l| l.contains("token=")) {
        let after = line.split("token=").nth(1).unwrap_or_default();
        assert!(
            !after.starts_with(|c: char| c.is_ascii_hexdigit()),
            "{line}"
        );
    }
}

#[test]
fn broken_builds_are_refused_naming_the_field() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.js"), "").unwrap();
    std::fs::write(
        dir.path().join("manifest.konnector"),
        r#"{"slug": "bad", "name": "Bad", "version": "1.0", "language": "node"}"#,
    )
    .unwrap();
    let err = home.fails(&[
        "konnectors",
        "install",
        dir.path().to_str().unwrap(),
        "--any-host",
    ]);
    assert!(
        err.contains("version") && err.contains("MAJOR.MINOR.PATCH"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("manifest.konnector"),
        r#"{"slug": "free-mobile", "name": "X", "version": "1.0.0", "permissions": {"b": {"type": "io.cozy.bills"}}}"#,
    )
    .unwrap();
    let err = home.fails(&[
        "konnectors",
        "install",
        dir.path().to_str().unwrap(),
        "--any-host",
    ]);
    assert!(err.contains("built-in"), "{err}");
    std::fs::write(
        dir.path().join("manifest.konnector"),
        r#"{"slug": "fine-node", "name": "X", "version": "1.0.0", "permissions": {"b": {"type": "io.cozy.bills"}}}"#,
    )
    .unwrap();
    let err = home.fails(&["konnectors", "install", dir.path().to_str().unwrap()]);
    assert!(err.contains("--allow-host"), "{err}");
    std::fs::remove_file(dir.path().join("index.js")).unwrap();
    let err = home.fails(&[
        "konnectors",
        "install",
        dir.path().to_str().unwrap(),
        "--any-host",
    ]);
    assert!(err.contains("index.js"), "{err}");
}
