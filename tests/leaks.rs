//! The leak test: every konnector's flows, through the real binary at trace
//! level, with known and unusual secret values (characters that get
//! URL-encoded, non-ASCII), then a scan of everything Gleaner printed or
//! wrote: logs (human and JSON), error outputs, job records, the store file
//! and its WAL, the vault files and the files tree. No secret may be found
//! in clear, nor in its URL-encoded forms.
//!
//! Secrets covered: the Free Mobile password (right and wrong), the vault
//! passphrase (before and after a rotation), the second-factor codes typed
//! (right and wrong), the Enedis client secret, and every access and
//! refresh token the Enedis sandbox issued.
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use gleaner_konnectors::energy::enedis::sandbox::Sandbox as Enedis;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, LOGIN_2FA, Sandbox, Scenario};

const PASSWORD: &str = "Pw: ü&=/+;%20 leak-7f3a";
const WRONG_PASSWORD: &str = "wr0ng ü&=?#leak-b1c4";
const CLIENT_SECRET: &str = "cs+/=ʘ leak-91c2";
const PASSPHRASE: &str = "vault phrase ☂ leak-4d1e";
const NEW_PASSPHRASE: &str = "second phrase ☔ leak-5e2f";
const WRONG_CODE: &str = "918273";

struct Run {
    home: tempfile::TempDir,
    /// Where spawned commands write their output (outside the data dir).
    logs: tempfile::TempDir,
    passphrase: String,
    /// Everything the binary printed, all commands together.
    printed: Vec<String>,
}

impl Run {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gleaner"));
        cmd.args(args)
            .env("GLEANER_HOME", self.home.path())
            .env("GLEANER_LOG", "trace")
            .env("GLEANER_PASSPHRASE", &self.passphrase)
            .env_remove("GLEANER_NEW_PASSPHRASE")
            .env_remove("GLEANER_LOG_FORMAT")
            .stdin(Stdio::null());
        cmd
    }

    fn keep(&mut self, out: &Output) {
        self.printed
            .push(String::from_utf8_lossy(&out.stdout).into_owned());
        self.printed
            .push(String::from_utf8_lossy(&out.stderr).into_owned());
    }

    fn run(&mut self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        self.keep(&out);
        out
    }

    fn ok(&mut self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gleaner {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts a command whose stderr (trace logs, more than a pipe holds)
    /// goes to a file, read back by [`Run::finish`].
    fn spawn(&self, args: &[&str]) -> (Child, PathBuf) {
        let log = self.logs.path().join(format!("{}.log", self.printed.len()));
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, log)
    }

    fn finish(&mut self, child: Child, log: &Path) -> Output {
        let out = child.wait_with_output().unwrap();
        self.keep(&out);
        self.printed.push(std::fs::read_to_string(log).unwrap());
        out
    }

    fn newest_job(&mut self, label: &str) -> serde_json::Value {
        let out = self.ok(&["jobs", "--account", label, "--json", "--limit", "1"]);
        out.lines()
            .next()
            .map(|l| serde_json::from_str(l).unwrap())
            .unwrap_or(serde_json::Value::Null)
    }

    async fn wait_job(&mut self, label: &str, state: &str) {
        for _ in 0..400 {
            if self.newest_job(label)["state"] == state {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let job = self.newest_job(label);
        panic!("{label}'s job never reached {state}: {job}");
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The forms a secret may take in text: raw, form-encoded, percent-encoded.
fn forms(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    let mut v = vec![secret.to_owned(), form, percent];
    v.dedup();
    v
}

/// Whether a 6-digit code appears as a number of its own (not inside a
/// longer digit run such as a timestamp's fraction).
fn has_code(hay: &[u8], code: &str) -> bool {
    let code = code.as_bytes();
    hay.windows(code.len()).enumerate().any(|(i, w)| {
        w == code
            && (i == 0 || !(hay[i - 1].is_ascii_digit() || hay[i - 1] == b'.'))
            && hay.get(i + code.len()).is_none_or(|c| !c.is_ascii_digit())
    })
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_is_ever_printed_logged_recorded_or_written_in_clear() {
    let fm = Sandbox::start(Scenario::Normal).await.unwrap();
    fm.set_password(PASSWORD);
    let enedis = Enedis::start().await.unwrap();
    enedis.set_client_secret(CLIENT_SECRET);
    let mut r = Run {
        home: tempfile::tempdir().unwrap(),
        passphrase: PASSPHRASE.to_owned(),
        printed: Vec::new(),
        logs: tempfile::tempdir().unwrap(),
    };
    let fm_url = fm.base_url();
    let add = |label: &str, login: &str, password: &str| {
        vec![
            "accounts".to_owned(),
            "add".into(),
            "free-mobile".into(),
            "--field".into(),
            format!("login={login}"),
            "--field".into(),
            format!("password={password}"),
            "--label".into(),
            label.into(),
            "--endpoint".into(),
            fm_url.clone(),
        ]
    };
    let strs = |v: &Vec<String>| {
        v.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{0}")
    };

    // Free Mobile: a run, a second one reusing the sealed session.
    let a = add("phone", LOGIN, PASSWORD);
    r.ok(&strs(&a).split('\u{0}').collect::<Vec<_>>());
    r.ok(&["run", "phone"]);
    r.ok(&["run", "phone"]);
    // A wrong password: LOGIN_FAILED, printed and recorded.
    let b = add("bad", LOGIN, WRONG_PASSWORD);
    r.ok(&strs(&b).split('\u{0}').collect::<Vec<_>>());
    let out = r.run(&["run", "bad"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOGIN_FAILED"));

    // Second factor through `gleaner 2fa`: a wrong code, then the right one.
    let c = add("otp", LOGIN_2FA, PASSWORD);
    r.ok(&strs(&c).split('\u{0}').collect::<Vec<_>>());
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

    // Enedis: OAuth consent through the loopback redirect, then a run.
    let (mut child, log) = r.spawn(&[
        "accounts",
        "add",
        "enedis",
        "--field",
        &format!("client_secret={CLIENT_SECRET}"),
        "--label",
        "home",
        "--endpoint",
        &enedis.base_url(),
        "--no-browser",
    ]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut tx = Some(tx);
        let mut all = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.starts_with("http")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line.clone());
            }
            all.push(line);
        }
        all.join("\n")
    });
    let url = rx.await.unwrap();
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    r.printed.push(reader.await.unwrap());
    r.printed.push(std::fs::read_to_string(&log).unwrap());
    assert!(status.success());
    r.ok(&["run", "home"]);
    enedis.revoke_access_tokens();
    r.ok(&["run", "home"]);

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

    // The scan.
    let mut secrets: Vec<String> = [
        PASSWORD,
        WRONG_PASSWORD,
        CLIENT_SECRET,
        PASSPHRASE,
        NEW_PASSPHRASE,
    ]
    .iter()
    .flat_map(|s| forms(s))
    .collect();
    let tokens = enedis.issued_tokens();
    assert!(tokens.len() >= 3, "access and refresh tokens were issued");
    secrets.extend(tokens);
    let codes = [WRONG_CODE.to_owned(), code];
    let printed = r.printed.join("\n");
    assert!(
        printed.len() > 100_000,
        "trace logs were captured ({} bytes)",
        printed.len()
    );
    for s in &secrets {
        assert!(!printed.contains(s.as_str()), "printed: {s:?}");
    }
    for c in &codes {
        assert!(
            !has_code(printed.as_bytes(), c),
            "a 2FA code was printed: {c}"
        );
    }
    let files = files_under(r.home.path());
    assert!(files.iter().any(|f| f.ends_with("gleaner.db")));
    assert!(files.iter().any(|f| f.to_string_lossy().ends_with(".pdf")));
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for s in &secrets {
            assert!(!contains(&bytes, s), "{} holds {s:?}", f.display());
        }
        let text = f.extension().is_some_and(|e| e == "json" || e == "toml");
        if text {
            for c in &codes {
                assert!(!has_code(&bytes, c), "{} holds a 2FA code", f.display());
            }
        }
    }
}
