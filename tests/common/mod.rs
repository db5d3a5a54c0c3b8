//! What the end-to-end tests of the binary share: a data directory and the
//! `gleaner` process run on it.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gleaner_konnectors::telco::free_mobile::sandbox::LOGIN;

/// A data directory (`GLEANER_HOME`) in a temporary folder.
pub struct Home(pub tempfile::TempDir);

impl Home {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn gleaner(&self, args: &[&str]) -> Output {
        self.gleaner_env(args, &[])
    }

    /// `gleaner ARGS` on this data directory, with no terminal and none of
    /// the caller's Gleaner variables; output piped (for `spawn`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gleaner"));
        cmd.args(args)
            .env("GLEANER_HOME", self.path())
            .env_remove("GLEANER_LOG")
            .env_remove("GLEANER_PASSPHRASE")
            .env_remove("GLEANER_NEW_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn gleaner_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.gleaner(args);
        assert!(
            out.status.success(),
            "gleaner {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.gleaner(args);
        assert!(!out.status.success(), "gleaner {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Adds a Free Mobile account pointing at a sandbox; returns stdout.
    pub fn add_free_mobile(&self, endpoint: &str, password: &str, label: &str) -> String {
        let mut args = add_args(LOGIN, password, label);
        args.extend(["--endpoint".to_owned(), endpoint.to_owned()]);
        self.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out)
                } else {
                    out.push(p)
                }
            }
        }
        let mut out = Vec::new();
        let root = self.path().join("files");
        if root.exists() {
            walk(&root, &mut out);
        }
        out.sort();
        out
    }

    pub fn export(&self) -> Vec<serde_json::Value> {
        self.ok(&["export"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The arguments of `accounts add free-mobile` with these fields.
pub fn add_args(login: &str, password: &str, label: &str) -> Vec<String> {
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
    ]
    .map(str::to_owned)
    .to_vec()
}

pub fn row_counts(out: &str, doctype: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.contains(doctype))
        .unwrap_or_else(|| panic!("no {doctype} row in:\n{out}"));
    line.split(['│', '┆'])
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect()
}
