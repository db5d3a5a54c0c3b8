//! `gleaner sandbox`: a provider's sandbox as its own process, found by a
//! second `gleaner` through `--endpoint`, stopped by SIGTERM.
#![allow(clippy::unwrap_used, missing_docs)]
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command};
use std::time::{Duration, Instant};

use common::Home;

/// The sandbox process; killed if the test ends without stopping it.
struct SandboxProcess {
    child: Child,
}

impl SandboxProcess {
    fn spawn(home: &Home, args: &[&str]) -> (Self, BufReader<ChildStdout>) {
        let mut child = home.command(args).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        (Self { child }, stdout)
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the sandbox did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn a_standalone_sandbox_serves_a_run_and_stops_on_sigterm() {
    let sandbox_home = Home::new();
    let (mut sandbox, mut stdout) = SandboxProcess::spawn(
        &sandbox_home,
        &["sandbox", "free-mobile", "--json", "--port", "0"],
    );
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = info["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let fields = info["fields"].as_object().unwrap();
    assert_eq!(fields.len(), 2, "{line}");
    let scenarios: Vec<&str> = info["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(scenarios[0], "normal");
    assert!(scenarios.contains(&"rate-limited"), "{scenarios:?}");
    // A sandbox needs no installation of its own.
    assert!(!sandbox_home.path().join("gleaner.db").exists());

    // Another gleaner, pointed at it with what it printed.
    let home = Home::new();
    let mut add = vec![
        "accounts".to_owned(),
        "add".to_owned(),
        "free-mobile".to_owned(),
        "--endpoint".to_owned(),
        url.clone(),
        "--label".to_owned(),
        "mine".to_owned(),
    ];
    for (name, value) in fields {
        add.push("--field".to_owned());
        add.push(format!("{name}={}", value.as_str().unwrap()));
    }
    home.ok(&add.iter().map(String::as_str).collect::<Vec<_>>());
    home.ok(&["run", "mine"]);
    let bills = home
        .export()
        .iter()
        .filter(|d| d["doctype"] == "io.cozy.bills")
        .count();
    assert_eq!(bills, 20);
    assert_eq!(home.files().len(), 20);

    let (status, took) = sandbox.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.is_empty(), "one JSON line only, then nothing: {rest}");
}

#[test]
fn text_output_names_the_credentials_and_scenarios() {
    let home = Home::new();
    let (mut sandbox, stdout) =
        SandboxProcess::spawn(&home, &["sandbox", "enedis", "--scenario", "deny-consent"]);
    let mut text = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let last = line.contains("Ctrl-C");
        text.push_str(&line);
        text.push('\n');
        if last {
            break;
        }
    }
    assert!(text.contains("scenario deny-consent"), "{text}");
    assert!(
        text.contains("client_secret = sandbox-client-secret"),
        "{text}"
    );
    assert!(text.contains("gleaner accounts add enedis --endpoint http://127.0.0.1:"));
    assert!(sandbox.terminate().0.success());
}

#[test]
fn unknown_slug_scenario_and_busy_port_are_clear_errors() {
    let home = Home::new();
    let err = home.fails(&["sandbox", "nope"]);
    assert!(err.contains("KONNECTOR_NOT_FOUND"), "{err}");
    assert!(err.contains("enedis, free-mobile"), "{err}");

    let err = home.fails(&["sandbox", "free-mobile", "--scenario", "nope"]);
    assert!(err.contains("no scenario `nope`"), "{err}");
    assert!(err.contains("normal, maintenance, changed-markup"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let err = home.fails(&["sandbox", "free-mobile", "--port", &port]);
    assert!(err.contains(&format!("port {port}")), "{err}");
    assert!(err.contains("already in use"), "{err}");
}
