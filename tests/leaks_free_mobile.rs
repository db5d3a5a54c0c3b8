//! The leak test, Free Mobile part: what needs its sandbox's controls. A
//! password with characters that get URL-encoded and non-ASCII ones (set on
//! the sandbox), right and wrong, a run reusing the sealed session, and the
//! second-factor codes typed through `gleaner 2fa` (a wrong one, then the
//! right one); then the daemon at trace level with JSON logs and a vault
//! rotation. The scan covers the passwords, the vault passphrases and the
//! codes. The generic part, over every konnector, is `tests/leaks.rs`.
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

mod leak_scan;

use std::process::Command;
use std::time::Duration;

use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, LOGIN_2FA, Sandbox, Scenario};
use leak_scan::Run;

const PASSWORD: &str = "Pw: ü&=/+;%20 leak-7f3a";
const WRONG_PASSWORD: &str = "wr0ng ü&=?#leak-b1c4";
const PASSPHRASE: &str = "vault phrase ☂ leak-4d1e";
const NEW_PASSPHRASE: &str = "second phrase ☔ leak-5e2f";
const WRONG_CODE: &str = "918273";

fn add(label: &str, login: &str, password: &str, url: &str) -> Vec<String> {
    [
        "accounts",
        "add",
        "free-mobile",
        "--field",
        &format!("login={login}"),
        "--field",
        &format!("password={password}"),
        "--label",
        label,
        "--endpoint",
        url,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_free_mobile_password_or_code_is_printed_logged_or_written_in_clear() {
    let fm = Sandbox::start(Scenario::Normal).await.unwrap();
    fm.set_password(PASSWORD);
    let url = fm.base_url();
    let mut r = Run::new(PASSPHRASE);

    // A run, a second one reusing the sealed session.
    r.ok(&strs(&add("phone", LOGIN, PASSWORD, &url)));
    r.ok(&["run", "phone"]);
    r.ok(&["run", "phone"]);
    // A wrong password: LOGIN_FAILED, printed and recorded.
    r.ok(&strs(&add("bad", LOGIN, WRONG_PASSWORD, &url)));
    let out = r.run(&["run", "bad"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOGIN_FAILED"));

    // Second factor through `gleaner 2fa`: a wrong code, then the right one.
    r.ok(&strs(&add("otp", LOGIN_2FA, PASSWORD, &url)));
    let (child, log) = r.spawn(&["run", "otp"]);
    r.wait_job("otp", "awaiting_user").await;
    r.ok(&["2fa", "otp", WRONG_CODE]);
    for _ in 0..400 {
        if fm.verification_posts() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.wait_job("otp", "awaiting_user").await;
    let code = fm.last_email_code().unwrap();
    r.ok(&["2fa", "otp", &code]);
    let out = r.finish(child, &log);
    assert!(out.status.success());

    // The daemon at trace level with JSON logs.
    r.ok(&["run", "--detach", "phone"]);
    std::fs::write(
        r.home.path().join("gleaner.toml"),
        "[scheduler]\npoll_ms = 50\n",
    )
    .unwrap();
    let (daemon, log) = r.spawn(&["daemon", "--log-format", "json"]);
    r.wait_job("phone", "done").await;
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let out = r.finish(daemon, &log);
    assert!(out.status.success());

    // Rotate the vault to a new passphrase; then read everything back.
    let out = r
        .command(&["vault", "rotate", "--to-passphrase"])
        .env("GLEANER_NEW_PASSPHRASE", NEW_PASSPHRASE)
        .output()
        .unwrap();
    r.keep(&out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.passphrase = NEW_PASSPHRASE.to_owned();
    r.ok(&["run", "phone"]);
    r.ok(&["status"]);
    r.ok(&["jobs", "--json", "--limit", "1000"]);
    r.ok(&["accounts", "list"]);
    r.ok(&["export"]);
    let bad = r.run(&["run", "bad"]);
    assert!(!bad.status.success());

    let files = leak_scan::files_under(r.home.path());
    assert!(files.iter().any(|f| f.to_string_lossy().ends_with(".pdf")));
    let secrets = [PASSWORD, WRONG_PASSWORD, PASSPHRASE, NEW_PASSPHRASE].map(str::to_owned);
    r.assert_no_leak(&secrets, &[WRONG_CODE.to_owned(), code], 100_000);
}
