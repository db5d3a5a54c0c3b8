//! End-to-end tests of the `gleaner` binary: real process, real files,
//! provider sandboxes on loopback. New CLI features get a test here.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::process::Command;

use common::{Home, add_args, row_counts};
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};

/// The rows of the demo summary's table: doctype -> [in store, created,
/// updated, skipped].
fn demo_summary(out: &str) -> std::collections::BTreeMap<String, [u64; 4]> {
    let summary = out
        .split("== demo summary")
        .nth(1)
        .unwrap_or_else(|| panic!("no demo summary in:\n{out}"));
    summary
        .lines()
        .filter(|l| l.starts_with('│') && l.contains("io.cozy."))
        .map(|l| {
            let cells: Vec<String> = l
                .split(['│', '┆'])
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            let n = |i: usize| cells[i].parse::<u64>().unwrap();
            (cells[0].clone(), [n(1), n(2), n(3), n(4)])
        })
        .collect()
}

#[test]
fn demo_imports_the_whole_catalogue_then_a_second_run_creates_nothing() {
    let home = Home::new();
    let first = home.ok(&["demo"]);
    assert!(first.contains("errors: none"), "{first}");
    let rows = demo_summary(&first);
    for (doctype, [in_store, created, _, _]) in &rows {
        // A fresh home: everything in the store was created by this demo.
        assert_eq!(in_store, created, "{doctype} in:\n{first}");
    }
    let files_in_store = rows["io.cozy.files"][0];
    let files = home.files();
    assert_eq!(files.len() as u64, files_in_store);
    assert!(
        files
            .iter()
            .all(|f| std::fs::read(f).unwrap().starts_with(b"%PDF-"))
    );
    assert!(
        first.contains(&format!(
            "files: {files_in_store} downloaded, 0 already there"
        )),
        "{first}"
    );

    let second = home.ok(&["demo"]);
    assert!(second.contains("errors: none"), "{second}");
    for (doctype, [in_store, created, _, _]) in demo_summary(&second) {
        assert_eq!(created, 0, "{doctype} created again in:\n{second}");
        assert_eq!(in_store, rows[&doctype][0], "{doctype} in:\n{second}");
    }
    // "Already there" counts the files a konnector looked for: those that
    // keep a cursor do not even look for the files of known documents.
    assert!(second.contains("files: 0 downloaded, "), "{second}");
    assert_eq!(home.files(), files);
    let docs = home.export();
    let count = |doctype: &str| docs.iter().filter(|d| d["doctype"] == doctype).count();
    assert_eq!(count("io.cozy.files") as u64, files_in_store);
    // One demo account per konnector with a sandbox (but a browser
    // konnector's, skipped with one line when chromium is missing outside
    // CI).
    let sandboxes = gleaner_konnectors::Registry::builtin()
        .unwrap()
        .entries()
        .iter()
        .filter(|e| e.sandbox.is_some())
        .count();
    let skipped = first.matches("skipped: chromium not found").count();
    assert_eq!(count("io.cozy.accounts"), sandboxes - skipped);
    let account = docs
        .iter()
        .find(|d| d["doctype"] == "io.cozy.accounts" && d["doc"]["account_type"] == "free-mobile")
        .unwrap();
    assert_eq!(account["doc"]["auth"]["login"], LOGIN);
    // Free Mobile: twenty invoices, each with its PDF.
    let bills: Vec<_> = docs
        .iter()
        .filter(|d| d["doctype"] == "io.cozy.bills" && d["doc"]["vendor"] == "Free Mobile")
        .collect();
    assert_eq!(bills.len(), 20);
    for b in &bills {
        let doc = &b["doc"];
        assert!(doc["amount"].is_number(), "{doc}");
        assert!(
            doc["invoice"]
                .as_str()
                .unwrap()
                .starts_with("io.cozy.files:")
        );
        assert_eq!(doc["cozyMetadata"]["createdByApp"], "gleaner");
    }
    // Enedis: one consumption document per month of the last year.
    let enedis = docs
        .iter()
        .filter(|d| {
            d["doctype"] == "io.cozy.timeseries.energy"
                && d["doc"]["cozyMetadata"]["importedFrom"] == "enedis"
        })
        .count();
    assert!((12..=14).contains(&enedis), "{enedis}");
}

#[test]
fn secrets_are_never_stored_or_printed_in_clear() {
    let home = Home::new();
    let out = home.gleaner(&["-vv", "demo"]);
    assert!(out.status.success());
    // Free Mobile's password and Enedis' OAuth client secret.
    let needles = [
        PASSWORD.as_bytes(),
        gleaner_konnectors::energy::enedis::sandbox::CLIENT_SECRET.as_bytes(),
    ];
    let leaks = |bytes: &[u8]| {
        needles
            .iter()
            .any(|n| bytes.windows(n.len()).any(|w| w == *n))
    };
    assert!(
        !leaks(&out.stdout) && !leaks(&out.stderr),
        "the password was printed"
    );
    for entry in std::fs::read_dir(home.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert!(
                !leaks(&std::fs::read(&p).unwrap()),
                "{} holds the password in clear",
                p.display()
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join("vault.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_gives_login_failed_and_saves_nothing() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    let endpoint = sandbox.base_url();
    let out = home.add_free_mobile(&endpoint, "not-the-password", "mine");
    assert!(out.contains("added account mine"), "{out}");
    let err = home.fails(&["run", "mine"]);
    assert!(err.contains("error: LOGIN_FAILED:"), "{err}");
    assert!(
        err.contains("next: gleaner accounts edit mine --field password="),
        "{err}"
    );
    let jobs = home.ok(&["jobs", "--account", "mine"]);
    assert!(jobs.contains("gleaner accounts edit mine"), "{jobs}");
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(home.export().len(), 1, "only the io.cozy.accounts document");
    assert!(home.files().is_empty());
    assert_eq!(sandbox.login_posts(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_failures_print_their_code_and_leave_the_store_empty() {
    let cases = [
        (Scenario::Maintenance, "error: MAINTENANCE:"),
        (Scenario::ChangedMarkup, "div.table-facture"),
        (Scenario::TruncatedPdf, "error: FILE_DOWNLOAD_FAILED:"),
    ];
    for (scenario, expected) in cases {
        let sandbox = Sandbox::start(scenario).await.unwrap();
        let home = Home::new();
        home.add_free_mobile(&sandbox.base_url(), PASSWORD, LOGIN);
        let err = home.fails(&["run", LOGIN]);
        assert!(err.contains(expected), "{scenario:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(home.export().len(), 1, "{scenario:?} saved documents");
        assert!(home.files().is_empty(), "{scenario:?} left files");
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let home = Home::new();
    let err = home.fails(&["accounts", "add", "no-such-bank"]);
    assert!(
        err.contains("UNKNOWN_ERROR.KONNECTOR_NOT_FOUND") && err.contains("free-mobile"),
        "{err}"
    );
    let err = home.fails(&[
        "accounts",
        "add",
        "free-mobile",
        "--field",
        "login=12345678",
    ]);
    assert!(
        err.contains("field `password`") && err.contains("--field password="),
        "{err}"
    );
    let err = home.fails(&[
        "accounts",
        "add",
        "free-mobile",
        "--field",
        "login=12",
        "--field",
        "password=x",
    ]);
    assert!(err.contains(r"^\d{8}$"), "{err}");
    let err = home.fails(&["run", "nobody"]);
    assert!(err.contains("no account `nobody`"), "{err}");
    let listed = home.ok(&["konnectors"]);
    assert!(
        listed.contains("free-mobile") && listed.contains("mobile.free.fr"),
        "{listed}"
    );
}

#[test]
fn a_bad_cron_override_is_explained_in_crontab_terms() {
    let home = Home::new();
    home.add_free_mobile("https://127.0.0.1:9/", PASSWORD, "phone");
    let err = home.fails(&["trigger", "phone", "--cron", "61 2 * * *"]);
    assert!(
        err.contains("`61 2 * * *`: minute `61` is out of range 0-59"),
        "{err}"
    );
    // Not the 6-field form handed to the cron crate, nor its wording.
    assert!(!err.contains("0 61 2") && !err.contains("Minutes"), "{err}");
    let err = home.fails(&["trigger", "phone", "--cron", "0 2 * * 8"]);
    assert!(err.contains("day of week `8` is out of range 0-7"), "{err}");
    let out = home.ok(&["trigger", "phone", "--cron", "30 2 * * 1-5"]);
    assert!(out.contains("cron `30 2 * * 1-5`"), "{out}");
}

#[test]
fn a_corrupt_store_is_refused_with_its_path() {
    let home = Home::new();
    std::fs::write(home.path().join("gleaner.db"), vec![0x5a; 8192]).unwrap();
    let err = home.fails(&["accounts", "list"]);
    assert!(
        err.contains("UNKNOWN_ERROR.STORE_FAILED") && err.contains("gleaner.db"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn accounts_can_be_listed_and_removed_with_their_data() {
    let home = Home::new();
    home.ok(&["demo"]);
    assert!(home.ok(&["accounts", "list"]).contains("demo-free-mobile"));
    let bills = home.ok(&[
        "docs",
        "io.cozy.bills",
        "--account",
        "demo-free-mobile",
        "--json",
    ]);
    assert_eq!(bills.lines().count(), 20);
    let files_before = home.files().len();
    home.ok(&["accounts", "remove", "demo-free-mobile", "--purge"]);
    assert!(!home.ok(&["accounts", "list"]).contains("demo-free-mobile"));
    // What is left is the other demo accounts': nothing of Free Mobile's,
    // and its twenty PDFs gone from the files directory.
    let left = home.export();
    assert!(left.iter().all(|d| {
        d["doc"]["vendor"] != "Free Mobile" && d["doc"]["account_type"] != "free-mobile"
    }));
    assert!(left.iter().any(|d| d["doctype"] == "io.cozy.bills"));
    assert_eq!(home.files().len(), files_before - 20);
    assert!(
        home.files()
            .iter()
            .all(|f| !f.to_string_lossy().contains("Free Mobile"))
    );
}

/// A `gleaner run` killed with SIGKILL at any moment leaves the old state
/// or the new one: zero or all twenty bills, never a part, and never a
/// partial file or a document without its file. The next run completes the import.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_at_any_moment_leaves_the_old_or_the_new_state() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    for delay_ms in [30u64, 90, 150, 210, 270, 330, 400, 600] {
        let home = Home::new();
        home.add_free_mobile(&sandbox.base_url(), PASSWORD, LOGIN);
        let mut child = Command::new(env!("CARGO_BIN_EXE_gleaner"))
            .args(["run", LOGIN])
            .env("GLEANER_HOME", home.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let _ = child.kill(); // SIGKILL; the run may also have finished already
        let _ = child.wait();
        // Reopening the data directory clears the dead run's staging folder.
        let docs = home.export();
        let bills = docs
            .iter()
            .filter(|d| d["doctype"] == "io.cozy.bills")
            .count();
        let files = home.files();
        // Files are moved into place just before the documents commit, so a
        // kill in that sub-millisecond window may leave complete files with
        // no document yet (the next run overwrites them); never a partial
        // file, never a document without its file.
        assert!(
            bills == 0 || bills == 20,
            "killed after {delay_ms} ms: {bills} bills"
        );
        assert!(
            bills == 0 || files.len() == 20,
            "killed after {delay_ms} ms: {} files",
            files.len()
        );
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert!(
                bytes.starts_with(b"%PDF-") && bytes.ends_with(b"%%EOF\n"),
                "partial file {}",
                f.display()
            );
        }
        let out = home.ok(&["run", LOGIN]);
        let created: u64 = row_counts(&out, "io.cozy.bills")[1].parse().unwrap();
        assert_eq!(created, if bills == 0 { 20 } else { 0 }, "{out}");
        assert_eq!(home.files().len(), 20);
    }
}

/// Runs `gleaner ARGS` (a command that prints an OAuth consent URL and
/// waits on loopback) and plays the browser: a GET of the URL, which the
/// sandbox approves at once. Returns the URL, the output and every other
/// line printed.
async fn with_browser_consent(
    home: &Home,
    args: &[&str],
) -> (String, std::process::Output, String) {
    use std::io::BufRead;
    let mut child = home.command(args).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read stdout to its end (the command prints more after the consent),
    // handing over the URL as soon as it is printed.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut tx = Some(tx);
        let mut rest = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            match tx.take() {
                Some(tx) if line.starts_with("http") => {
                    let _ = tx.send(line);
                }
                other => {
                    tx = other;
                    rest.push(line);
                }
            }
        }
        rest
    });
    let url = rx.await.expect("no consent URL printed");
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let printed = reader.await.unwrap().join("\n");
    (url, out, printed)
}

/// `accounts add enedis` labelled `maison` against the sandbox at
/// `endpoint`, the test playing the browser: the consent URL, the command's
/// output and what it printed.
async fn add_enedis(home: &Home, endpoint: &str) -> (String, std::process::Output, String) {
    use gleaner_konnectors::energy::enedis::sandbox::CLIENT_SECRET;
    let client_secret = format!("client_secret={CLIENT_SECRET}");
    with_browser_consent(
        home,
        &[
            "accounts",
            "add",
            "enedis",
            "--field",
            &client_secret,
            "--label",
            "maison",
            "--endpoint",
            endpoint,
            "--no-browser",
        ],
    )
    .await
}

/// OAuth: `accounts add` for Enedis prints the consent URL and listens on
/// loopback; the test plays the browser (the sandbox approves at once and
/// redirects to the listener). Then a run imports the consumption with the
/// stored, sealed tokens.
#[tokio::test(flavor = "multi_thread")]
async fn an_enedis_account_is_added_through_the_loopback_consent_and_runs() {
    use gleaner_konnectors::energy::enedis::sandbox::Sandbox as Enedis;

    let sandbox = Enedis::start().await.unwrap();
    let home = Home::new();
    let (url, out, printed) = add_enedis(&home, &sandbox.base_url()).await;
    assert!(url.contains("/dataconnect/v1/oauth2/authorize?"), "{url}");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("duration=P1Y"), "{url}");
    assert!(
        out.status.success(),
        "accounts add failed: {printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("added account maison"), "{printed}");
    assert_eq!(sandbox.token_requests(), 1);

    let run = home.ok(&["run", "maison"]);
    let row = row_counts(&run, "io.cozy.timeseries.energy");
    let created: u64 = row[1].parse().unwrap();
    assert!((12..=14).contains(&created), "{run}");
    let docs = home.ok(&["docs", "io.cozy.timeseries.energy", "--json"]);
    assert!(docs.contains("16401220101758"), "{docs}");
    // A second run creates nothing and needs no new token.
    let again = home.ok(&["run", "maison"]);
    assert_eq!(row_counts(&again, "io.cozy.timeseries.energy")[1], "0");
    assert_eq!(sandbox.token_requests(), 1);
    // Issue 8, defect 2: a key rotation re-seals the OAuth tokens too, so
    // the next run still opens them (it used to fail with a vault error
    // and pause the account).
    let rotated = home.ok(&["vault", "rotate"]);
    assert!(rotated.contains("oauth_tokens: 1"), "{rotated}");
    let status = home.ok(&["vault", "status"]);
    assert!(status.contains("oauth_tokens"), "{status}");
    let after = home.ok(&["run", "maison"]);
    assert_eq!(row_counts(&after, "io.cozy.timeseries.energy")[1], "0");
    assert_eq!(sandbox.token_requests(), 1, "the sealed token was reused");
    // No token is in clear anywhere in the data directory.
    for token in sandbox.issued_tokens() {
        for entry in std::fs::read_dir(home.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "{} holds a token in clear",
                    p.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_survive_runs_and_vault_rotations() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    home.add_free_mobile(&sandbox.base_url(), PASSWORD, "mine");
    home.ok(&["run", "mine"]);
    home.ok(&["run", "mine"]);
    assert_eq!(
        sandbox.login_posts(),
        1,
        "the second run reused the session"
    );

    let status = home.ok(&["vault", "status"]);
    assert!(status.contains("key source: key file"), "{status}");
    assert!(status.contains("2 sealed record(s)"), "{status}");

    // A rotation in key-file mode keeps the session usable.
    let out = home.ok(&["vault", "rotate"]);
    assert!(out.contains("2 record(s) re-sealed"), "{out}");
    home.ok(&["run", "mine"]);
    assert_eq!(sandbox.login_posts(), 1);

    // To a passphrase: the vault then needs it.
    let pass = "cli-vault-passphrase-42";
    let out = home.gleaner_env(
        &["-vv", "vault", "rotate", "--to-passphrase"],
        &[("GLEANER_NEW_PASSPHRASE", pass)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!home.path().join("vault.key").exists());
    let err = home.fails(&["run", "mine"]);
    assert!(err.contains("locked with a passphrase"), "{err}");
    let out = home.gleaner_env(&["run", "mine"], &[("GLEANER_PASSPHRASE", "not-it-at-all")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vault: wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = home.gleaner_env(&["-vv", "run", "mine"], &[("GLEANER_PASSPHRASE", pass)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sandbox.login_posts(), 1, "the session survived the switch");
    let status = String::from_utf8(
        home.gleaner_env(&["vault", "status"], &[("GLEANER_PASSPHRASE", pass)])
            .stdout,
    )
    .unwrap();
    assert!(status.contains("key source: passphrase"), "{status}");
    // Neither the passphrase nor the password is anywhere on disk or output.
    for needle in [pass.as_bytes(), PASSWORD.as_bytes()] {
        let leaks = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
        assert!(!leaks(&out.stdout) && !leaks(&out.stderr));
        for entry in std::fs::read_dir(home.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                assert!(!leaks(&std::fs::read(&p).unwrap()), "{}", p.display());
            }
        }
    }
}

/// Issue 8: `--endpoint` takes only http(s); link-local and metadata
/// addresses are refused outright, and a non-loopback endpoint needs
/// `--allow-remote-endpoint`. Nothing is dialled: every refusal happens
/// before the account exists (and none of these runs).
#[test]
fn endpoints_outside_the_policy_are_refused_with_a_clear_message() {
    let home = Home::new();
    let add = |endpoint: &str, extra: &[&str]| {
        let mut args = add_args("12345678", "endpoint-test-pw", "remote");
        args.extend(["--endpoint", endpoint].map(str::to_owned));
        args.extend(extra.iter().map(|e| (*e).to_owned()));
        home.gleaner(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    for (endpoint, says) in [
        ("http://169.254.169.254/", "cloud metadata address"),
        ("http://[fe80::1]/", "link-local"),
        ("http://metadata.google.internal/", "cloud metadata name"),
        ("ftp://127.0.0.1/", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("javascript:alert(1)", "only http:// and https://"),
    ] {
        for extra in [&[][..], &["--allow-remote-endpoint"][..]] {
            let out = add(endpoint, extra);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{endpoint}: {err}");
            assert!(err.contains("--endpoint refused"), "{endpoint}: {err}");
            assert!(err.contains(says), "{endpoint}: {err}");
            assert!(!err.contains("endpoint-test-pw"), "{err}");
        }
    }
    for remote in ["https://example.com/", "http://10.0.0.1/"] {
        let out = add(remote, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{remote}: {err}");
        assert!(err.contains("--allow-remote-endpoint"), "{remote}: {err}");
    }
    // Nothing was stored.
    let listed = home.ok(&["accounts", "list"]);
    assert!(!listed.contains("free-mobile"), "{listed}");
    // With the confirmation, a remote endpoint is stored (not dialled: no
    // run follows).
    let out = add("http://10.0.0.1/", &["--allow-remote-endpoint"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(home.ok(&["accounts", "list"]).contains("http://10.0.0.1/"));
}

/// Issue 8: a 100 KB password is refused at `accounts add` with a message
/// naming the field and the limit, before it is registered or stored.
#[test]
fn an_absurdly_long_field_is_refused_naming_the_limit() {
    let home = Home::new();
    let args = add_args("12345678", &"p".repeat(100 * 1024), "long");
    let out = home.gleaner(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("field `password`") && err.contains("the limit is 4096 bytes"),
        "{err}"
    );
    assert!(!err.contains("pppppppp"), "{err}");
    assert!(!home.ok(&["accounts", "list"]).contains("free-mobile"));
}

/// The customer withdrew the Enedis consent: the run ends with
/// OAUTH_OUTDATED and says to consent again; `accounts consent` does it
/// (loopback redirect, new tokens saved, pause lifted) and the next run
/// works.
#[tokio::test(flavor = "multi_thread")]
async fn an_outdated_consent_is_given_again_with_accounts_consent() {
    use gleaner_konnectors::energy::enedis::sandbox::Sandbox as Enedis;

    let sandbox = Enedis::start().await.unwrap();
    let home = Home::new();
    let (_, out, printed) = add_enedis(&home, &sandbox.base_url()).await;
    assert!(out.status.success(), "{printed}");
    home.ok(&["run", "maison"]);
    sandbox.revoke_consent();
    let err = home.fails(&["run", "maison"]);
    assert!(
        err.contains("error: USER_ACTION_NEEDED.OAUTH_OUTDATED:"),
        "{err}"
    );
    assert!(
        err.contains("next: gleaner accounts consent maison"),
        "{err}"
    );
    let status = home.ok(&["status"]);
    assert!(
        status.contains("NEEDS YOU (USER_ACTION_NEEDED.OAUTH_OUTDATED)"),
        "{status}"
    );
    assert!(
        status.contains("gleaner accounts consent maison"),
        "{status}"
    );

    let before = sandbox.token_requests();
    let (url, out, printed) =
        with_browser_consent(&home, &["accounts", "consent", "maison", "--no-browser"]).await;
    assert!(url.contains("/dataconnect/v1/oauth2/authorize?"), "{url}");
    assert!(
        out.status.success(),
        "accounts consent failed: {printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("consent given again for maison"),
        "{printed}"
    );
    assert_eq!(sandbox.token_requests(), before + 1);
    let status = home.ok(&["status"]);
    assert!(
        !status.contains("NEEDS YOU"),
        "the pause is lifted: {status}"
    );
    let run = home.ok(&["run", "maison"]);
    assert_eq!(
        row_counts(&run, "io.cozy.timeseries.energy")[1],
        "0",
        "{run}"
    );
    // A konnector without OAuth has no consent to give.
    let fm = Sandbox::start(Scenario::Normal).await.unwrap();
    home.add_free_mobile(&fm.base_url(), PASSWORD, "phone");
    let err = home.fails(&["accounts", "consent", "phone"]);
    assert!(err.contains("gleaner accounts edit phone"), "{err}");
}

/// `accounts pause` stops automatic runs (shown in `schedule` and
/// `status`); a manual run still works; `accounts resume` ends it.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_account_shows_paused_and_still_runs_by_hand() {
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    let home = Home::new();
    home.add_free_mobile(&sandbox.base_url(), PASSWORD, "phone");
    let out = home.ok(&["accounts", "pause", "phone"]);
    assert!(out.contains("paused phone"), "{out}");
    let schedule = home.ok(&["schedule"]);
    let line = schedule.lines().find(|l| l.contains("phone")).unwrap();
    assert!(line.contains("paused"), "{schedule}");
    let status = home.ok(&["status"]);
    let line = status.lines().find(|l| l.contains("phone")).unwrap();
    assert!(line.contains("paused"), "{status}");
    let run = home.ok(&["run", "phone"]);
    assert_eq!(row_counts(&run, "io.cozy.bills")[1], "20", "{run}");
    let out = home.ok(&["accounts", "resume", "phone"]);
    assert!(out.contains("resumed phone: next automatic run"), "{out}");
    let schedule = home.ok(&["schedule"]);
    let line = schedule.lines().find(|l| l.contains("phone")).unwrap();
    assert!(!line.contains("paused"), "{schedule}");
    let status = home.ok(&["status"]);
    let line = status.lines().find(|l| l.contains("phone")).unwrap();
    assert!(line.contains(" ok "), "{status}");
}
