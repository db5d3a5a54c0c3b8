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

#[tokio::test(flavor = "multi_thread")]
async fn run_without_a_terminal_fails_with_twofa_expired_and_saves_nothing() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    add_account(home.path(), &sandbox);
    let out = gleaner(home.path(), &["run", LABEL]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("error: USER_ACTION_NEEDED.TWOFA_EXPIRED:"),
        "{err}"
    );
    assert!(err.contains(&format!("gleaner run {LABEL}")), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert_eq!(bills(home.path()), 0);
    assert_eq!(sandbox.verification_posts(), 0);
}
