//! What the leak tests share: the `gleaner` binary driven at trace level
//! on one data directory, everything it printed kept, and the scan of that
//! output and of every file it wrote for secrets in clear or URL-encoded.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub struct Run {
    pub home: tempfile::TempDir,
    /// Where spawned commands write their output (outside the data dir).
    pub logs: tempfile::TempDir,
    pub passphrase: String,
    /// Everything the binary printed, all commands together.
    pub printed: Vec<String>,
}

impl Run {
    pub fn command(&self, args: &[&str]) -> Command {
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

    pub fn keep(&mut self, out: &Output) {
        self.printed
            .push(String::from_utf8_lossy(&out.stdout).into_owned());
        self.printed
            .push(String::from_utf8_lossy(&out.stderr).into_owned());
    }

    pub fn run(&mut self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        self.keep(&out);
        out
    }

    pub fn ok(&mut self, args: &[&str]) -> String {
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
    pub fn spawn(&self, args: &[&str]) -> (Child, PathBuf) {
        let log = self.logs.path().join(format!("{}.log", self.printed.len()));
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, log)
    }

    pub fn finish(&mut self, child: Child, log: &Path) -> Output {
        let out = child.wait_with_output().unwrap();
        self.keep(&out);
        self.printed.push(std::fs::read_to_string(log).unwrap());
        out
    }

    pub fn newest_job(&mut self, label: &str) -> serde_json::Value {
        let out = self.ok(&["jobs", "--account", label, "--json", "--limit", "1"]);
        out.lines()
            .next()
            .map(|l| serde_json::from_str(l).unwrap())
            .unwrap_or(serde_json::Value::Null)
    }

    pub async fn wait_job(&mut self, label: &str, state: &str) {
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

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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
pub fn forms(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    let mut v = vec![secret.to_owned(), form, percent];
    v.dedup();
    v
}

/// Whether a 6-digit code appears as a number of its own (not inside a
/// longer digit run such as a timestamp's fraction).
pub fn has_code(hay: &[u8], code: &str) -> bool {
    let code = code.as_bytes();
    hay.windows(code.len()).enumerate().any(|(i, w)| {
        w == code
            && (i == 0 || !(hay[i - 1].is_ascii_digit() || hay[i - 1] == b'.'))
            && hay.get(i + code.len()).is_none_or(|c| !c.is_ascii_digit())
    })
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

impl Run {
    /// A fresh data directory whose vault is sealed by `passphrase`.
    pub fn new(passphrase: &str) -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
            logs: tempfile::tempdir().unwrap(),
            passphrase: passphrase.to_owned(),
            printed: Vec::new(),
        }
    }

    /// `gleaner accounts add SLUG --field k=v... --label LABEL --endpoint
    /// URL --no-browser`. When the konnector asks for an OAuth consent, the
    /// URL it prints is opened (a sandbox's consent page approves at once).
    /// Returns whether the command succeeded and its stderr.
    pub async fn add_account(
        &mut self,
        slug: &str,
        fields: &[(String, String)],
        label: &str,
        endpoint: &str,
    ) -> (bool, String) {
        let mut args: Vec<String> = vec!["accounts".into(), "add".into(), slug.into()];
        for (k, v) in fields {
            args.push("--field".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(["--label", label, "--endpoint", endpoint, "--no-browser"].map(str::to_owned));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut child, log) = self.spawn(&argv);
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
        if let Ok(url) = rx.await {
            // The consent page answers, then redirects to the loopback
            // listener of `accounts add`; a refused exchange shows there.
            let _ = reqwest::get(&url).await;
        }
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        self.printed.push(reader.await.unwrap());
        let stderr = std::fs::read_to_string(&log).unwrap();
        self.printed.push(stderr.clone());
        (status.success(), stderr)
    }

    /// Asserts that the binary printed and wrote none of `secrets` (each in
    /// its raw and URL-encoded forms) and none of the 6-digit `codes` (in
    /// output and in JSON or TOML files); `min_printed` guards against a
    /// scan of nothing (trace logs were captured).
    pub fn assert_no_leak(&self, secrets: &[String], codes: &[String], min_printed: usize) {
        let secrets: Vec<String> = secrets.iter().flat_map(|s| forms(s)).collect();
        let printed = self.printed.join("\n");
        assert!(
            printed.len() > min_printed,
            "trace logs were captured ({} bytes)",
            printed.len()
        );
        for s in &secrets {
            assert!(!printed.contains(s.as_str()), "printed: {s:?}");
        }
        for c in codes {
            assert!(
                !has_code(printed.as_bytes(), c),
                "a 2FA code was printed: {c}"
            );
        }
        let files = files_under(self.home.path());
        assert!(files.iter().any(|f| f.ends_with("gleaner.db")));
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            for s in &secrets {
                assert!(!contains(&bytes, s), "{} holds {s:?}", f.display());
            }
            let text = f.extension().is_some_and(|e| e == "json" || e == "toml");
            if text {
                for c in codes {
                    assert!(!has_code(&bytes, c), "{} holds a 2FA code", f.display());
                }
            }
        }
    }
}
