//! Second factors through the real `gleaner` binary: a person at a terminal
//! (a pseudo-terminal driven by `rexpect`) types the code Free Mobile's
//! sandbox emailed; with no terminal, the run fails with TWOFA_EXPIRED.
//!
//! The sandbox runs in this process, so the test reads the code from its
//! outbox as the person would read their mailbox.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN_2FA, PASSWORD, Sandbox, Scenario};

const LABEL: &str = "mine";

fn gleaner(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(args)
        .env("GLEANER_HOME", home)
        .env_remove("GLEANER_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Adds the sandbox's 2FA account, labelled [`LABEL`].
fn add_account(home: &Path, sandbox: &Sandbox) {
    let out = gleaner(
        home,
        &[
            "accounts",
            "add",
            "free-mobile",
            "--field",
            &format!("login={LOGIN_2FA}"),
            "--field",
            &format!("password={PASSWORD}"),
            "--label",
            LABEL,
            "--endpoint",
            &sandbox.base_url(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bills in the store, through `gleaner docs`.
fn bills(home: &Path) -> usize {
    let out = gleaner(
        home,
        &["docs", "io.cozy.bills", "--json", "--limit", "1000"],
    );
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().count()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn run_in_a_terminal_prompts_for_the_emailed_code_and_imports_the_bills() {
    use rexpect::process::WaitStatus;

    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    add_account(home.path(), &sandbox);

    let mut command = Command::new(env!("CARGO_BIN_EXE_gleaner"));
    command
        .args(["run", LABEL])
        .env("GLEANER_HOME", home.path())
        .env_remove("GLEANER_LOG");
    // The timeout only stops a hung test; nothing is asserted on time.
    let mut term = rexpect::session::spawn_command(command, Some(60_000)).unwrap();
    let prompt =
        format!("Free Mobile sent a code by email to j***@example.org. Code for {LABEL}: ");
    term.exp_string(&prompt).unwrap();
    let code = sandbox.last_email_code().expect("a code was emailed");

    // A mistyped code first: the site refuses it and the prompt comes back.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    term.send_line(wrong).unwrap();
    term.exp_string(&format!("That code was refused. {prompt}"))
        .unwrap();
    term.send_line(&code).unwrap();
    let rest = term.exp_eof().unwrap();
    let status = term.process().wait().unwrap();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}:\n{rest}"
    );
    assert!(rest.contains(&format!("{LABEL}: run ")), "{rest}");
    assert!(rest.contains("20 files downloaded"), "{rest}");

    assert_eq!(bills(home.path()), 20);
    assert_eq!(
        sandbox.outbox().len(),
        1,
        "one email, the code kept its value"
    );
    assert_eq!(sandbox.verification_posts(), 2);
}

/// The state of the account's newest job, through `gleaner jobs --json`.
fn newest_job(home: &Path) -> serde_json::Value {
    let out = gleaner(
        home,
        &["jobs", "--account", LABEL, "--json", "--limit", "1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .next()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or(serde_json::Value::Null)
}

async fn wait_for_state(home: &Path, state: &str) -> serde_json::Value {
    for _ in 0..300 {
        let job = newest_job(home);
        if job["state"] == state {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the job never reached {state}: {}", newest_job(home));
}

/// Without a terminal (a script, another shell), the job waits in
/// `awaiting_user` and `gleaner 2fa` answers from another process; a wrong
/// code gets another chance.
#[tokio::test(flavor = "multi_thread")]
async fn run_without_a_terminal_waits_for_gleaner_2fa() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    add_account(home.path(), &sandbox);
    let run = Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(["run", LABEL])
        .env("GLEANER_HOME", home.path())
        .env_remove("GLEANER_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let job = wait_for_state(home.path(), "awaiting_user").await;
    assert_eq!(job["twofa_kind"], "email");
    assert_eq!(job["twofa_hint"], "j***@example.org");
    let status = gleaner(home.path(), &["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("WAITING FOR YOU"));
    // A wrong code first: the run asks again.
    let out = gleaner(home.path(), &["2fa", LABEL, "000000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..300 {
        if sandbox.verification_posts() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    wait_for_state(home.path(), "awaiting_user").await;
    let code = sandbox.last_email_code().unwrap();
    let out = gleaner(home.path(), &["2fa", LABEL, &code]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains(&code) && !stderr.contains(PASSWORD),
        "{stderr}"
    );
    assert_eq!(bills(home.path()), 20);
    assert_eq!(sandbox.verification_posts(), 2);
    let done = newest_job(home.path());
    assert_eq!(done["state"], "done");
    // The codes are nowhere in the store file in clear.
    let db = std::fs::read(home.path().join("gleaner.db")).unwrap();
    assert!(!db.windows(code.len()).any(|w| w == code.as_bytes()));
}

/// Nobody answers within the wait: USER_ACTION_NEEDED.TWOFA_EXPIRED, nothing
/// saved, and the account is marked as needing its owner.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_nobody_answers_ends_twofa_expired_and_saves_nothing() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("gleaner.toml"),
        "[scheduler]\ntwofa_wait_secs = 1\n",
    )
    .unwrap();
    add_account(home.path(), &sandbox);
    let out = gleaner(home.path(), &["run", LABEL]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("error: USER_ACTION_NEEDED.TWOFA_EXPIRED:"),
        "{err}"
    );
    assert!(err.contains(&format!("next: gleaner run {LABEL}")), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert_eq!(bills(home.path()), 0);
    assert_eq!(sandbox.verification_posts(), 0);
    let status = gleaner(home.path(), &["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("NEEDS YOU (USER_ACTION_NEEDED.TWOFA_EXPIRED)"),
        "{status}"
    );
    assert!(status.contains(&format!("gleaner run {LABEL}")), "{status}");
}

/// The trusted-device cookie is saved with the login session (sealed), so a
/// later run whose login session died is not asked for a code again.
#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_device_survives_between_runs() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    add_account(home.path(), &sandbox);
    let run = Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(["run", LABEL])
        .env("GLEANER_HOME", home.path())
        .env_remove("GLEANER_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_state(home.path(), "awaiting_user").await;
    let code = sandbox.last_email_code().unwrap();
    let out = gleaner(home.path(), &["2fa", LABEL, &code]);
    assert!(out.status.success());
    assert!(run.wait_with_output().unwrap().status.success());
    // The site drops the idle login session; the device stays trusted.
    sandbox.advance_clock(std::time::Duration::from_secs(45 * 60));
    let out = gleaner(home.path(), &["run", LABEL]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sandbox.outbox().len(), 1, "no second code was sent");
    assert_eq!(sandbox.login_posts(), 2, "a new login, without a code");
}
