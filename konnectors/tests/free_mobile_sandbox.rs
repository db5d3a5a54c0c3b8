//! End-to-end runs of the Free Mobile konnector against its sandbox.
//!
//! Each test starts the sandbox on loopback, opens a fresh `SqliteStore` and
//! `FileStore` in a temporary folder, and runs the real konnector through
//! `run_konnector`, as the CLI and the scheduler do. Failures must leave the
//! store and the files tree exactly as they were.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use gleaner_framework::http::{HttpClient, HttpConfig};
use gleaner_framework::store::{Account, DocStore, StoredDoc};
use gleaner_framework::{
    ErrorCode, Konnector, KonnectorError, Manifest, RunContext, RunEnv, RunOptions, RunReport,
    Secret, async_trait, run_konnector,
};
use gleaner_konnectors::telco::free_mobile::FreeMobile;
use gleaner_konnectors::telco::free_mobile::sandbox::{LOGIN, PASSWORD, Sandbox, Scenario};
use gleaner_testing::TestAccount;

const BILLS: &str = "io.cozy.bills";
const FILES: &str = "io.cozy.files";
const ACCOUNT_ID: &str = "acc-free-mobile";
/// The account's folder under the files root: `<manifest name>/<account id>`.
const ACCOUNT_DIR: &str = "Free Mobile/acc-free-mobile";

/// A sandbox, a fresh installation from the test kit (sessions off: each
/// run logs in), and an account pointing at the sandbox.
struct Harness {
    kit: gleaner_testing::Harness,
    sandbox: Sandbox,
    env: RunEnv,
    root: PathBuf,
    account: Account,
}

impl Harness {
    async fn start(scenario: Scenario) -> Self {
        let kit = gleaner_testing::Harness::builder()
            .sessions(false)
            .build()
            .await
            .unwrap();
        let sandbox = Sandbox::start(scenario).await.unwrap();
        let env = kit.env().clone();
        let root = kit.files().root().to_owned();
        let account = Account {
            id: ACCOUNT_ID.into(),
            konnector: "free-mobile".into(),
            label: LOGIN.into(),
            fields: BTreeMap::from([("login".to_owned(), LOGIN.to_owned())]),
            sealed_secrets: Vec::new(),
            endpoint: Some(sandbox.base_url()),
            created_at: Utc::now(),
            folder: ACCOUNT_DIR.into(),
        };
        Self {
            kit,
            sandbox,
            env,
            root,
            account,
        }
    }

    /// Runs the real konnector with `password`.
    async fn run(&self, password: &str) -> Result<RunReport, KonnectorError> {
        let konnector = FreeMobile::new().unwrap();
        self.run_with(&konnector, password).await
    }

    async fn run_with(
        &self,
        konnector: &dyn Konnector,
        password: &str,
    ) -> Result<RunReport, KonnectorError> {
        let account = TestAccount {
            account: self.account.clone(),
            secrets: BTreeMap::from([("password".to_owned(), Secret::new(password))]),
        };
        self.kit
            .run_with(konnector, &account, RunOptions::default())
            .await
    }

    fn store(&self) -> &dyn DocStore {
        self.env.store.as_ref()
    }

    async fn list(&self, doctype: &str) -> Vec<StoredDoc> {
        self.store()
            .list(doctype, Some(ACCOUNT_ID), None, 1000)
            .await
            .unwrap()
    }

    /// Asserts that the store holds no document and no state, and that the
    /// files tree holds no file at all (staging folders included).
    async fn assert_nothing_saved(&self) {
        let counts = self.kit.counts().await.unwrap();
        assert!(counts.is_empty(), "documents were saved: {counts:?}");
        assert!(self.store().state(ACCOUNT_ID).await.unwrap().is_none());
        let files = self.kit.file_paths().unwrap();
        assert!(files.is_empty(), "files were left behind: {files:?}");
    }
}

/// Every regular file under `root`, hidden ones included, as `/`-separated
/// paths relative to `root`.
fn files_under(root: &Path) -> BTreeSet<String> {
    gleaner_testing::files_under(root)
        .unwrap()
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap();
            let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
            parts.join("/")
        })
        .collect()
}

fn revs(docs: &[StoredDoc]) -> BTreeMap<String, String> {
    docs.iter().map(|d| (d.id.clone(), d.rev.clone())).collect()
}

#[tokio::test]
async fn a_normal_run_saves_every_bill_with_its_pdf_and_a_second_run_saves_nothing_new() {
    let h = Harness::start(Scenario::Normal).await;
    let report = h.run(PASSWORD).await.unwrap();

    assert_eq!(report.konnector, "free-mobile");
    assert_eq!(report.account_id, ACCOUNT_ID);
    assert_eq!(report.counts[BILLS].created, 20, "{:?}", report.counts);
    assert_eq!(report.counts[FILES].created, 20, "{:?}", report.counts);
    assert_eq!(report.created(), 40);
    assert_eq!(report.files_downloaded, 20);
    assert_eq!(report.files_reused, 0);
    assert_eq!(report.retries, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(h.sandbox.pdf_downloads(), 20);

    // The files are in the account's folder, whole, and nowhere else.
    let on_disk = files_under(&h.root);
    assert_eq!(on_disk.len(), 20, "{on_disk:?}");
    assert!(
        on_disk
            .iter()
            .all(|p| p.starts_with(&format!("{ACCOUNT_DIR}/"))),
        "{on_disk:?}"
    );
    for name in [
        "202512_freemobile_0612345678_19.99EUR.pdf",
        "202512_freemobile_multiligne_21.99EUR.pdf",
    ] {
        assert!(
            on_disk.contains(&format!("{ACCOUNT_DIR}/{name}")),
            "{name} missing: {on_disk:?}"
        );
    }
    for rel in &on_disk {
        let bytes = std::fs::read(h.env.files.absolute(rel)).unwrap();
        assert!(bytes.starts_with(b"%PDF"), "{rel} is not a PDF");
        assert!(bytes.ends_with(b"%%EOF\n"), "{rel} is truncated");
    }

    // Every files document describes a file on disk.
    let files = h.list(FILES).await;
    assert_eq!(files.len(), 20);
    let file_ids: BTreeSet<_> = files.iter().map(|f| f.id.clone()).collect();
    for f in &files {
        let path = f.data["path"].as_str().unwrap();
        assert!(on_disk.contains(path), "{path} has a document but no file");
        let size = std::fs::metadata(h.env.files.absolute(path)).unwrap().len();
        assert_eq!(f.data["size"].as_u64(), Some(size), "{path}");
        assert_eq!(f.data["mime"], "application/pdf");
        assert_eq!(f.account_id, ACCOUNT_ID);
    }

    // Every bill links one of them, each a different one.
    let bills = h.list(BILLS).await;
    assert_eq!(bills.len(), 20);
    let mut linked = BTreeSet::new();
    for b in &bills {
        let invoice = b.data["invoice"].as_str().unwrap();
        let id = invoice.strip_prefix("io.cozy.files:").unwrap();
        assert!(
            file_ids.contains(id),
            "bill {} links a missing file {invoice}",
            b.id
        );
        assert!(linked.insert(id.to_owned()), "two bills link {invoice}");
        assert_eq!(b.data["vendor"], "Free Mobile");
        assert_eq!(b.data["cozyMetadata"]["sourceAccount"], ACCOUNT_ID);
    }
    let line2 = bills
        .iter()
        .filter(|b| b.data["contractId"] == "0798765432")
        .count();
    let summaries = bills
        .iter()
        .filter(|b| b.data["contractId"] == "Multiligne")
        .count();
    assert_eq!((line2, summaries), (6, 2));

    let state = h.store().state(ACCOUNT_ID).await.unwrap().unwrap();
    assert_eq!(state.last_run_id, report.run_id);
    assert_eq!(state.state["invoices_seen"], 20);

    // A second run finds everything known and downloads nothing.
    let bill_revs = revs(&bills);
    let file_revs = revs(&files);
    let again = h.run(PASSWORD).await.unwrap();
    assert_eq!(again.created(), 0, "{:?}", again.counts);
    assert_eq!(again.counts[BILLS].skipped, 20, "{:?}", again.counts);
    assert_eq!(again.counts[BILLS].updated, 0, "{:?}", again.counts);
    assert_eq!(again.files_downloaded, 0);
    assert_eq!(again.files_reused, 20);
    assert_eq!(
        h.sandbox.pdf_downloads(),
        20,
        "the second run downloaded PDFs"
    );
    assert_eq!(revs(&h.list(BILLS).await), bill_revs);
    assert_eq!(revs(&h.list(FILES).await), file_revs);
    assert_eq!(files_under(&h.root), on_disk);
    let state = h.store().state(ACCOUNT_ID).await.unwrap().unwrap();
    assert_eq!(state.last_run_id, again.run_id);
}

#[tokio::test]
async fn a_wrong_password_is_login_failed_and_saves_nothing() {
    let h = Harness::start(Scenario::Normal).await;
    let err = h.run("not-the-password").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginFailed, "{}", err.message);
    assert!(err.message.contains("refused"), "{}", err.message);
    assert!(
        !err.message.contains("not-the-password"),
        "the secret leaked: {}",
        err.message
    );
    assert_eq!(h.sandbox.login_posts(), 1);
    assert_eq!(h.sandbox.pdf_downloads(), 0);
    h.assert_nothing_saved().await;
}

#[tokio::test]
async fn logins_are_blocked_after_five_failures() {
    let h = Harness::start(Scenario::Normal).await;
    for attempt in 1..=5 {
        let err = h.run("not-the-password").await.unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::LoginFailed,
            "attempt {attempt}: {}",
            err.message
        );
    }
    // The sandbox now refuses even the right password.
    let err = h.run(PASSWORD).await.unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::LoginFailedTooManyAttempts,
        "{}",
        err.message
    );
    assert!(err.message.contains("blocked"), "{}", err.message);
    assert_eq!(h.sandbox.login_posts(), 6);
    h.assert_nothing_saved().await;
}

#[tokio::test]
async fn maintenance_is_reported_and_saves_nothing() {
    let h = Harness::start(Scenario::Maintenance).await;
    let err = h.run(PASSWORD).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Maintenance, "{}", err.message);
    assert!(err.message.contains("maintenance"), "{}", err.message);
    assert_eq!(
        h.sandbox.login_posts(),
        0,
        "no login should be tried during a maintenance"
    );
    h.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_503_is_vendor_down_and_saves_nothing() {
    let h = Harness::start(Scenario::Unavailable).await;
    let err = h.run(PASSWORD).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::VendorDown, "{}", err.message);
    assert!(err.message.contains("503"), "{}", err.message);
    // One attempt and max_retries (2) retries, then the run gives up.
    assert_eq!(h.sandbox.requests(), 3);
    h.assert_nothing_saved().await;
}

#[tokio::test]
async fn changed_markup_is_page_changed_naming_the_selector() {
    let h = Harness::start(Scenario::ChangedMarkup).await;
    let err = h.run(PASSWORD).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PageChanged, "{}", err.message);
    assert!(err.message.contains("div.table-facture"), "{}", err.message);
    h.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_truncated_pdf_fails_the_run_and_leaves_no_file() {
    let h = Harness::start(Scenario::TruncatedPdf).await;
    let err = h.run(PASSWORD).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FileDownloadFailed, "{}", err.message);
    assert!(err.message.contains("truncated"), "{}", err.message);
    assert!(h.sandbox.pdf_downloads() >= 1);
    h.assert_nothing_saved().await;
}

#[tokio::test]
async fn a_failed_run_leaves_an_existing_store_untouched() {
    let h = Harness::start(Scenario::Normal).await;
    let first = h.run(PASSWORD).await.unwrap();
    assert_eq!(first.counts[BILLS].created, 20);
    let bills = revs(&h.list(BILLS).await);
    let files = revs(&h.list(FILES).await);
    let state = h.store().state(ACCOUNT_ID).await.unwrap().unwrap();

    // Lose one PDF, so the next run must download it again, and break the
    // downloads.
    let lost = format!("{ACCOUNT_DIR}/202512_freemobile_0612345678_19.99EUR.pdf");
    std::fs::remove_file(h.env.files.absolute(&lost)).unwrap();
    let on_disk = files_under(&h.root);
    assert_eq!(on_disk.len(), 19);
    h.sandbox.set_scenario(Scenario::TruncatedPdf);

    let err = h.run(PASSWORD).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FileDownloadFailed, "{}", err.message);
    assert!(err.message.contains("truncated"), "{}", err.message);
    assert_eq!(
        h.sandbox.pdf_downloads(),
        21,
        "only the lost PDF is fetched again"
    );

    let counts = h.store().count_by_doctype().await.unwrap();
    assert_eq!(
        counts,
        BTreeMap::from([(BILLS.to_owned(), 20), (FILES.to_owned(), 20)])
    );
    assert_eq!(revs(&h.list(BILLS).await), bills);
    assert_eq!(revs(&h.list(FILES).await), files);
    let after = h.store().state(ACCOUNT_ID).await.unwrap().unwrap();
    assert_eq!(after.last_run_id, first.run_id);
    assert_eq!(after, state);
    // Neither the truncated file nor a staging leftover appeared.
    assert_eq!(files_under(&h.root), on_disk);

    // Once the site is fixed, the next run restores the lost file.
    h.sandbox.set_scenario(Scenario::Normal);
    let fixed = h.run(PASSWORD).await.unwrap();
    assert_eq!(fixed.files_downloaded, 1);
    assert_eq!(fixed.created(), 0, "{:?}", fixed.counts);
    assert_eq!(files_under(&h.root).len(), 20);
}

#[tokio::test]
async fn rate_limiting_is_retried_and_the_run_succeeds() {
    let h = Harness::start(Scenario::RateLimited).await;
    let report = h.run(PASSWORD).await.unwrap();
    assert!(report.retries > 0, "{report:?}");
    assert_eq!(report.counts[BILLS].created, 20, "{:?}", report.counts);
    assert_eq!(report.counts[FILES].created, 20, "{:?}", report.counts);
    assert_eq!(report.files_downloaded, 20);
    assert_eq!(files_under(&h.root).len(), 20);
}

/// A konnector with Free Mobile's manifest that, once it has reached the
/// sandbox, tries another server on loopback.
struct Stray {
    manifest: Manifest,
    elsewhere: String,
}

#[async_trait]
impl Konnector for Stray {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> gleaner_framework::Result<()> {
        let home = ctx.url("/account/")?;
        let resp = ctx.http().get(&home).await?;
        assert!(
            resp.status.is_success(),
            "the sandbox answered {}",
            resp.status
        );
        ctx.http().get(&self.elsewhere).await?;
        Ok(())
    }
}

/// A server on another loopback port that counts the connections it gets.
async fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (format!("http://{addr}/steal?token=secret"), accepted)
}

#[tokio::test]
async fn only_the_sandbox_endpoint_is_reachable_not_another_loopback_port() {
    let h = Harness::start(Scenario::Normal).await;
    let (elsewhere, accepted) = counting_server().await;
    let stray = Stray {
        manifest: FreeMobile::new().unwrap().manifest().clone(),
        elsewhere: elsewhere.clone(),
    };

    let err = h.run_with(&stray, PASSWORD).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::HostNotAllowed, "{}", err.message);
    assert!(err.message.contains("/steal"), "{}", err.message);
    assert!(
        !err.message.contains("token=secret"),
        "the query leaked: {}",
        err.message
    );
    assert_eq!(h.sandbox.requests(), 1, "the sandbox itself was reachable");
    h.assert_nothing_saved().await;

    // The same allow-list as the runner builds: manifest hosts + endpoint.
    let endpoint = h.sandbox.base_url();
    let sandbox_host = endpoint.strip_prefix("http://").unwrap();
    let mut allowed_hosts = stray.manifest.hosts.clone();
    allowed_hosts.push(sandbox_host.to_owned());
    let client = HttpClient::new(HttpConfig {
        allowed_hosts,
        retry: gleaner_testing::fast_retry(),
        ..HttpConfig::default()
    })
    .unwrap();
    let err = client.get(&elsewhere).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::HostNotAllowed, "{}", err.message);
    client.get(&format!("{endpoint}/account/")).await.unwrap();
    assert_eq!(client.stats().requests, 1);

    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a request reached the other server"
    );
    // The other server was listening all along: a direct connection counts.
    let addr = elsewhere
        .strip_prefix("http://")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    drop(tokio::net::TcpStream::connect(addr).await.unwrap());
    for _ in 0..100 {
        if accepted.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// Issue 8: an account stored with an `ftp://` (or metadata) endpoint, from
/// before the endpoint policy, fails once with a non-retried code instead
/// of five times as VENDOR_DOWN; nothing is sent.
#[tokio::test]
async fn a_stored_endpoint_outside_the_policy_fails_once_not_retried() {
    let mut h = Harness::start(Scenario::Normal).await;
    let sandbox = h.sandbox.base_url();
    for endpoint in [
        sandbox.replace("http://", "ftp://"),
        "http://169.254.169.254/".to_owned(),
        "file:///etc/passwd".to_owned(),
    ] {
        h.account.endpoint = Some(endpoint.clone());
        let err = h.run(PASSWORD).await.unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::HostNotAllowed,
            "{endpoint}: {}",
            err.message
        );
        assert!(!err.code.is_retryable());
        h.assert_nothing_saved().await;
    }
}

/// Issue 8: while the run waits on a request, its progress says which.
#[tokio::test]
async fn progress_names_the_request_the_run_waits_on() {
    use gleaner_framework::{Progress, ProgressFn};
    use std::sync::Mutex;
    let h = Harness::start(Scenario::Normal).await;
    let heard: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&heard);
    let progress: ProgressFn = Arc::new(move |p: &Progress| {
        sink.lock().unwrap().push(p.message.clone());
    });
    let konnector = FreeMobile::new().unwrap();
    let secrets = BTreeMap::from([("password".to_owned(), Secret::new(PASSWORD))]);
    run_konnector(
        &konnector,
        &h.account,
        secrets,
        &h.env,
        RunOptions {
            progress: Some(progress),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    let host = h
        .sandbox
        .base_url()
        .trim_start_matches("http://")
        .to_owned();
    let heard = heard.lock().unwrap();
    assert!(
        heard
            .iter()
            .any(|m| m.starts_with(&format!("waiting for {host} (GET /"))),
        "{heard:?}"
    );
}
