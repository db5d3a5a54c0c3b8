//! The leak test, generic part: every konnector of the registry that has a
//! sandbox, through the real binary at trace level. For each: an account
//! added with the sandbox's fields and secrets (an OAuth consent given on
//! the sandbox's page), two runs, then an account whose every secret is
//! wrong (characters that get URL-encoded, non-ASCII), refused with
//! `LOGIN_FAILED`. Then the daemon at trace level with JSON logs, a vault
//! rotation to a new passphrase, more runs and the read-only commands.
//! Finally a scan of everything Gleaner printed or wrote: logs (human and
//! JSON), error outputs, job records, the store file and its WAL, the vault
//! files and the files tree. No secret (the sandboxes' secrets, the wrong
//! ones, both vault passphrases) may be found in clear, nor URL-encoded.
//!
//! This file names no provider: a new konnector with a sandbox is covered
//! without editing it. Checks that need a provider's sandbox controls live
//! in `leaks_<provider>.rs` (unusual passwords, second-factor codes, OAuth
//! tokens issued).
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

mod leak_scan;

use std::process::Command;

use gleaner_konnectors::Registry;
use gleaner_sandbox_kit::StartOptions;
use leak_scan::Run;

const PASSPHRASE: &str = "vault phrase ☂ leak-4d1e";
const NEW_PASSPHRASE: &str = "second phrase ☔ leak-5e2f";

/// A wrong value for secret field `name`, unusual enough to show in any
/// encoding.
fn wrong(name: &str) -> String {
    format!("wr0ng {name} ü&=?#leak-b1c4")
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_of_any_konnector_is_printed_logged_or_written_in_clear() {
    let registry = Registry::builtin().unwrap();
    let mut r = Run::new(PASSPHRASE);
    let mut secrets = vec![PASSPHRASE.to_owned(), NEW_PASSPHRASE.to_owned()];
    let mut sandboxes = Vec::new();
    let mut good_labels = Vec::new();
    let mut bad_labels = Vec::new();
    for entry in registry.entries() {
        let Some(def) = entry.sandbox else { continue };
        let slug = entry.konnector.manifest().slug.clone();
        let sandbox = def.launch(StartOptions::default()).await.unwrap();
        let url = sandbox.base_url.clone();

        let good = format!("good-{slug}");
        let mut fields = sandbox.fields.clone();
        fields.extend(sandbox.secrets.clone());
        let (ok, err) = r.add_account(&slug, &fields, &good, &url).await;
        assert!(ok, "{slug}: accounts add failed: {err}");
        r.ok(&["run", &good]);
        // A second run (sealed session, stored tokens).
        r.ok(&["run", &good]);
        good_labels.push(good);
        secrets.extend(sandbox.secrets.iter().map(|(_, v)| v.clone()));

        if !sandbox.secrets.is_empty() {
            let bad = format!("bad-{slug}");
            let mut fields = sandbox.fields.clone();
            for (k, _) in &sandbox.secrets {
                fields.push((k.clone(), wrong(k)));
                secrets.push(wrong(k));
            }
            let (ok, err) = r.add_account(&slug, &fields, &bad, &url).await;
            let refused = if ok {
                // Checked at the first run (a password).
                let out = r.run(&["run", &bad]);
                assert!(
                    !out.status.success(),
                    "{slug}: a run with wrong secrets succeeded"
                );
                bad_labels.push(bad);
                String::from_utf8_lossy(&out.stderr).into_owned()
            } else {
                // Checked when the account is added (an OAuth client secret).
                err
            };
            assert!(refused.contains("LOGIN_FAILED"), "{slug}: {refused}");
        }
        sandboxes.push(sandbox);
    }
    assert!(!good_labels.is_empty(), "the registry has sandboxes");

    // The daemon at trace level with JSON logs.
    r.ok(&["run", "--detach", &good_labels[0]]);
    std::fs::write(
        r.home.path().join("gleaner.toml"),
        "[scheduler]\npoll_ms = 50\n",
    )
    .unwrap();
    let (daemon, log) = r.spawn(&["daemon", "--log-format", "json"]);
    r.wait_job(&good_labels[0].clone(), "done").await;
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
    for label in &good_labels {
        r.ok(&["run", label]);
    }
    r.ok(&["status"]);
    r.ok(&["jobs", "--json", "--limit", "1000"]);
    r.ok(&["accounts", "list"]);
    r.ok(&["export"]);
    for label in &bad_labels {
        assert!(!r.run(&["run", label]).status.success());
    }

    r.assert_no_leak(&secrets, &[], 50_000);
    drop(sandboxes);
}
