//! Tenants on one PostgreSQL installation are kept apart on every path a
//! person or an operator has: the CLI (`--tenant`), the fleet's daemon
//! (which runs every tenant's jobs, each in its own scope), the files tree
//! and the secrets. Removing a tenant removes its rows and files and
//! destroys its data key: a copy of its sealed rows (a backup) no longer
//! opens.
//!
//! The query path's second wall (row-level security) is tested on the
//! store and the queue themselves (framework and scheduler tests).
//!
//! Skipped with one printed line when no PostgreSQL answers (required
//! under CI): see `gleaner_testing::postgres`.
#![cfg(unix)]
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use gleaner_testing::postgres::TestDb;
use sqlx::Row;

fn gleaner(home: &Path, db: Option<&str>, tenant: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gleaner"));
    cmd.env("GLEANER_HOME", home)
        .env_remove("GLEANER_DATABASE")
        .env_remove("GLEANER_TENANT")
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null());
    if let Some(db) = db {
        cmd.env("GLEANER_DATABASE", db);
    }
    if let Some(t) = tenant {
        cmd.args(["--tenant", t]);
    }
    cmd.args(args).output().unwrap()
}

fn ok(home: &Path, db: &str, tenant: Option<&str>, args: &[&str]) -> String {
    let out = gleaner(home, Some(db), tenant, args);
    assert!(
        out.status.success(),
        "gleaner --tenant {tenant:?} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The command fails; its error output.
fn refused(home: &Path, db: Option<&str>, tenant: Option<&str>, args: &[&str]) -> String {
    let out = gleaner(home, db, tenant, args);
    assert!(
        !out.status.success(),
        "gleaner --tenant {tenant:?} {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Adds the account `mine` of `tenant` on the sandbox; its id.
fn add_account(home: &Path, db: &str, tenant: &str, sandbox: &Sandbox) -> String {
    let out = ok(
        home,
        db,
        Some(tenant),
        &[
            "accounts",
            "add",
            "free-mobile",
            "--field",
            &format!("login={LOGIN}"),
            "--field",
            &format!("password={PASSWORD}"),
            "--label",
            "mine",
            "--endpoint",
            &sandbox.base_url(),
        ],
    );
    // "added account mine (<id>) for free-mobile; …"
    out.split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("no account id in {out}"))
}

/// The ids of a tenant's bills.
fn bill_ids(home: &Path, db: &str, tenant: &str) -> Vec<String> {
    ok(home, db, Some(tenant), &["export"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["doctype"] == "io.cozy.bills")
        .map(|v| v["doc"]["_id"].as_str().unwrap().to_owned())
        .collect()
}

fn pdfs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(pdfs(&p));
        } else if p.extension().is_some_and(|x| x == "pdf") {
            out.push(p);
        }
    }
    out
}

/// A daemon process, killed on drop.
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The fleet's daemon: no `--tenant`, every tenant's jobs.
fn fleet_daemon(home: &Path, db: &str) -> Daemon {
    let log = std::fs::File::create(home.join("daemon.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(["daemon", "--worker-id", "fleet-1"])
        .env("GLEANER_HOME", home)
        .env("GLEANER_DATABASE", db)
        .env_remove("GLEANER_TENANT")
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(|c| Daemon(Some(c)))
        .unwrap()
}

/// `gleaner serve --tenant TENANT` on a free loopback port, killed on drop,
/// with its one-time login link.
fn serve(home: &Path, db: &str, tenant: &str) -> (Daemon, String) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gleaner"))
        .args(["--tenant", tenant, "serve", "--listen", "127.0.0.1:0"])
        .env("GLEANER_HOME", home)
        .env("GLEANER_DATABASE", db)
        .env_remove("GLEANER_TENANT")
        .env_remove("GLEANER_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Daemon(Some(child));
    let mut lines = std::io::BufReader::new(stdout).lines();
    let link = lines
        .find_map(|l| {
            let l = l.ok()?;
            let at = l.find("http://")?;
            l.contains("/login?token=")
                .then(|| l[at..].trim().to_owned())
        })
        .expect("gleaner serve printed no login link");
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (served, link)
}

/// Rows of `tenant` in every tenant-scoped table.
async fn rows_of(pool: &sqlx::PgPool, tenant: &str) -> i64 {
    let mut n = 0;
    for table in [
        "accounts",
        "documents",
        "konnector_state",
        "oauth_tokens",
        "sessions",
        "sched_triggers",
        "sched_jobs",
        "sched_twofa_answers",
    ] {
        // The table names are this test's constants.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) AS n FROM {table} WHERE tenant_id = $1"
        )))
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap();
        n += row.get::<i64, _>("n");
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_see_run_and_remove_only_their_own_data() {
    let Some(db) = TestDb::create("tenants").await else {
        return;
    };
    let url = db.url.as_str();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let sandbox = Sandbox::start(Scenario::Normal).await.unwrap();
    // No nightly slot comes due mid-test: only the runs asked for.
    std::fs::write(
        home.join("gleaner.toml"),
        format!("[scheduler]\n{}", gleaner_testing::window_away_from_now()),
    )
    .unwrap();

    // Tenants are made by name, once.
    ok(home, url, None, &["tenants", "add", "alice"]);
    ok(home, url, None, &["tenants", "add", "bob"]);
    let again = refused(home, Some(url), None, &["tenants", "add", "alice"]);
    assert!(again.contains("exists already"), "{again}");
    let bad = refused(home, Some(url), None, &["tenants", "add", "Bad/Name"]);
    assert!(bad.contains("is not a tenant name"), "{bad}");
    let unknown = refused(home, Some(url), Some("carol"), &["accounts", "list"]);
    assert!(unknown.contains("no tenant `carol`"), "{unknown}");
    assert!(
        home.join("tenants/alice/data.key").exists(),
        "alice's sealed data key"
    );

    // The same label in both; each sees its own only.
    let alice = add_account(home, url, "alice", &sandbox);
    let bob = add_account(home, url, "bob", &sandbox);
    let listed = ok(home, url, Some("alice"), &["accounts", "list"]);
    assert!(
        listed.contains(&alice) && !listed.contains(&bob),
        "{listed}"
    );
    let listed = ok(home, url, None, &["accounts", "list"]);
    assert!(
        !listed.contains(&alice) && !listed.contains(&bob),
        "the default tenant sees another's account: {listed}"
    );

    // Alice runs hers from the terminal; Bob's is queued and the fleet's
    // daemon (no --tenant) runs it in Bob's scope.
    ok(home, url, Some("alice"), &["run", "mine"]);
    ok(home, url, Some("bob"), &["run", "--detach", "mine"]);
    let daemon = fleet_daemon(home, url);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let jobs = ok(home, url, Some("bob"), &["jobs", "--json"]);
        if jobs.contains("\"done\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bob's job never ended: {jobs}\n{}",
            std::fs::read_to_string(home.join("daemon.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(daemon);
    let alice_bills = bill_ids(home, url, "alice");
    let bob_bills = bill_ids(home, url, "bob");
    assert_eq!(alice_bills.len(), 20, "alice's bills");
    assert_eq!(
        bob_bills.len(),
        20,
        "bob's bills: the same keys as alice's, deduplicated per tenant"
    );
    assert!(
        alice_bills.iter().all(|id| !bob_bills.contains(id)),
        "a bill shared by two tenants"
    );
    assert!(bill_ids(home, url, "default").is_empty());

    // Files: each tenant's own tree, none in the default one.
    assert_eq!(pdfs(&home.join("tenants/alice/files")).len(), 20);
    assert_eq!(pdfs(&home.join("tenants/bob/files")).len(), 20);
    assert!(pdfs(&home.join("files")).is_empty());

    // The web interface under --tenant alice: her account, not Bob's, not
    // even by its address.
    let (served, link) = serve(home, url, "alice");
    let web = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = web.get(&link).send().await.unwrap();
    let base = link.split("/login?").next().unwrap().to_owned();
    assert!(page.status().is_success(), "{}", page.status());
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("/accounts/{alice}")), "{page}");
    assert!(!page.contains(&bob), "{page}");
    let theirs = web
        .get(format!("{base}/accounts/{bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), reqwest::StatusCode::NOT_FOUND);
    let bills = web
        .get(format!("{base}/documents/io.cozy.bills"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Her twenty bills, each with its file; not Bob's twenty.
    assert_eq!(bills.matches("class=\"file-link\"").count(), 20, "{bills}");
    assert!(!bills.contains(&bob), "{bills}");
    drop(served);

    // Bob's account, named by its id, does not exist for Alice: not to
    // run, edit, pause, answer or remove.
    for args in [
        vec!["run", bob.as_str()],
        vec!["accounts", "remove", bob.as_str()],
        vec!["accounts", "pause", bob.as_str()],
        vec!["2fa", bob.as_str(), "123456"],
        vec!["jobs", "--account", bob.as_str()],
        vec!["trigger", bob.as_str(), "--auto"],
    ] {
        let e = refused(home, Some(url), Some("alice"), &args);
        assert!(e.contains("no account"), "{args:?}: {e}");
    }
    let status = ok(home, url, Some("alice"), &["status"]);
    assert!(!status.contains(&bob), "{status}");
    let docs = ok(
        home,
        url,
        Some("alice"),
        &["docs", "io.cozy.bills", "--json", "--limit", "100"],
    );
    assert!(bob_bills.iter().all(|id| !docs.contains(id)), "{docs}");

    // Rotating the installation's key re-seals the default tenant's
    // records and re-wraps the tenants' data keys; their records stay
    // sealed by their data keys (Alice's run below still opens hers).
    add_account(home, url, "default", &sandbox);
    let e = refused(home, Some(url), Some("alice"), &["vault", "rotate"]);
    assert!(e.contains("without --tenant"), "{e}");
    let rotated = ok(home, url, None, &["vault", "rotate"]);
    assert!(
        rotated.contains("accounts: 1") && rotated.contains("tenant data keys: 2"),
        "{rotated}"
    );
    // Its status counts the tenant's own sealed records.
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let alices: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM accounts WHERE tenant_id = 'alice')
              + (SELECT count(*) FROM sessions WHERE tenant_id = 'alice')
              + (SELECT count(*) FROM oauth_tokens WHERE tenant_id = 'alice')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let status = ok(home, url, Some("alice"), &["vault", "status"]);
    assert!(
        status.contains("tenant:     alice")
            && status.contains(&format!("\n{alices} sealed record(s)")),
        "{alices}: {status}"
    );

    // Removing Bob: refused without a terminal or --yes, then everything
    // of his goes, Alice's stays.
    let backup: Vec<u8> = sqlx::query("SELECT sealed_secrets FROM accounts WHERE id = $1")
        .bind(&bob)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("sealed_secrets");
    let e = refused(home, Some(url), None, &["tenants", "remove", "bob"]);
    assert!(e.contains("--yes"), "{e}");
    assert!(rows_of(&pool, "bob").await > 0);
    let removed = ok(home, url, None, &["tenants", "remove", "bob", "--yes"]);
    assert!(removed.contains("data key destroyed"), "{removed}");
    assert_eq!(rows_of(&pool, "bob").await, 0, "bob's rows");
    assert!(!home.join("tenants/bob").exists(), "bob's folder");
    assert!(rows_of(&pool, "alice").await > 0);
    let list = ok(home, url, None, &["tenants", "list"]);
    assert!(list.contains("alice") && !list.contains("bob"), "{list}");
    ok(home, url, Some("alice"), &["run", "mine"]);
    assert_eq!(bill_ids(home, url, "alice"), alice_bills);
    assert_eq!(pdfs(&home.join("tenants/alice/files")).len(), 20);
    let e = refused(
        home,
        Some(url),
        None,
        &["tenants", "remove", "default", "--yes"],
    );
    assert!(e.contains("cannot be removed"), "{e}");

    // The backup of Bob's sealed credentials opens with nothing left: not
    // with the installation's key, nor with a new tenant's of his name.
    let installation =
        gleaner_framework::vault::Vault::open_or_create(&home.join("vault.key")).unwrap();
    assert!(installation.open(&bob, &backup).is_err());
    ok(home, url, None, &["tenants", "add", "bob"]);
    sqlx::query(
        "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, endpoint, created_at, folder, tenant_id)
         VALUES ($1, 'free-mobile', 'restored', '{}'::jsonb, $2, $3, now(), '', 'bob')",
    )
    .bind(&bob)
    .bind(&backup)
    .bind(sandbox.base_url())
    .execute(&pool)
    .await
    .unwrap();
    let e = refused(home, Some(url), Some("bob"), &["run", "restored"]);
    assert!(e.contains("VAULT_FAILED"), "{e}");
    pool.close().await;
    drop(db);
}

#[test]
fn sqlite_holds_one_tenant() {
    let home = tempfile::tempdir().unwrap();
    let e = refused(home.path(), None, Some("alice"), &["accounts", "list"]);
    assert!(e.contains("tenants need PostgreSQL"), "{e}");
    let e = refused(home.path(), None, None, &["tenants", "list"]);
    assert!(e.contains("tenants need PostgreSQL"), "{e}");
    // The default tenant by name is today's installation.
    let out = gleaner(home.path(), None, Some("default"), &["accounts", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
