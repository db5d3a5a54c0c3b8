//! The NextGenPSD2 konnector, unchanged, against a mock bank generated from
//! the Berlin Group's own OpenAPI file (`shared/specs/bg-psd2-1.3.12.yaml`)
//! by Stoplight Prism in static mode: Prism checks every request against
//! the spec (paths, required headers such as `X-Request-ID` and
//! `Consent-ID`, query parameters, the consent body) and answers with the
//! spec's first example. The run must end with valid documents, or with an
//! error code that the spec's example answer explains.
//!
//! Prism comes from the npm registry (`npm install @stoplight/prism-cli@5`);
//! the test finds it through `GLEANER_PRISM` (the `prism` executable) or at
//! `<repo>/.ci/node_modules/.bin/prism`. Without it the test prints one
//! `skipped:` line and passes, unless `CI` is set. Prism is started on a
//! free loopback port in its own process group, and that group is killed
//! (by its id) however the test ends.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gleaner_framework::{
    RunOptions, Secret, TwoFactorChannel, TwoFactorKind, TwoFactorRequest, async_trait,
};
use gleaner_konnectors::bank::nextgenpsd2::NextGenPsd2;
use gleaner_testing::{Harness, validate_stored};

const INSTALL: &str = "npm install @stoplight/prism-cli@5";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The prism executable, or why there is none.
fn prism() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GLEANER_PRISM") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("GLEANER_PRISM={} is not a file", p.display()))
        };
    }
    let local = repo().join(".ci/node_modules/.bin/prism");
    if local.is_file() {
        Ok(local)
    } else {
        Err("neither GLEANER_PRISM nor .ci/node_modules/.bin/prism".to_owned())
    }
}

/// The spec: `GLEANER_SPECS` (a folder), else `<repo>/../shared/specs`.
fn spec() -> Result<PathBuf, String> {
    let dir = std::env::var_os("GLEANER_SPECS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/specs"));
    let file = dir.join("bg-psd2-1.3.12.yaml");
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!("no spec at {}", file.display()))
    }
}

/// Prism, killed with its whole process group when dropped.
struct PrismGuard {
    child: Child,
    log: PathBuf,
}

impl Drop for PrismGuard {
    fn drop(&mut self) {
        // The child leads its own group (process_group(0)): its id is the
        // group's. Kill the group by id, then reap the child.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts prism on a free port and waits until it answers.
fn start(prism: &Path, spec: &Path, dir: &Path) -> (PrismGuard, String) {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let log = dir.join("prism.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(prism)
        .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg(spec)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap();
    let mut guard = PrismGuard { child, log };
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = guard.child.try_wait() {
            let log = std::fs::read_to_string(&guard.log).unwrap_or_default();
            panic!("prism exited ({status}) before it listened:\n{log}");
        }
        // Prism listens only once the spec is loaded.
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prism did not listen within 120 s: {}",
            std::fs::read_to_string(&guard.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    (guard, base)
}

/// The person: told the spec's `scaRedirect` (a testbank.com page, not
/// opened: no test touches the internet), says it is done; the mock then
/// reports the consent `valid`, as its example says.
#[derive(Default)]
struct Person {
    asked: Mutex<Vec<TwoFactorRequest>>,
}

#[async_trait]
impl TwoFactorChannel for Person {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        self.asked.lock().unwrap().push(request.clone());
        Ok(Secret::new(""))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_konnector_runs_unchanged_against_the_spec_mock() {
    let (prism, spec) = match (prism(), spec()) {
        (Ok(p), Ok(s)) => (p, s),
        (p, s) => {
            let why = [p.err(), s.err()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            if std::env::var_os("CI").is_some() {
                panic!("prism check impossible in CI: {why} ({INSTALL})");
            }
            println!(
                "skipped: prism not installed (`{INSTALL}` in .ci/, or set GLEANER_PRISM; {why})"
            );
            return;
        }
    };
    let h = Harness::new().await.unwrap();
    let (guard, base) = start(&prism, &spec, h.dir());
    let account = h
        .account("nextgenpsd2", &[("bank_name", "Prism")], &[], Some(&base))
        .await
        .unwrap();
    let person = Arc::new(Person::default());
    let options = RunOptions {
        two_factor: Arc::clone(&person) as Arc<dyn TwoFactorChannel>,
        ..h.run_options()
    };
    let result = h
        .run_with(&NextGenPsd2::new().unwrap(), &account, options)
        .await;
    let log = std::fs::read_to_string(&guard.log).unwrap_or_default();
    drop(guard);

    // Prism refuses (400, 422) any request the spec does not allow: none
    // may have been refused.
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Request terminated") || l.contains("Violation: request"))
        .collect();
    assert!(
        refused.is_empty(),
        "prism refused requests:\n{}",
        refused.join("\n")
    );

    match result {
        Ok(report) => {
            // The spec's example consent asks for a redirect.
            let asked = person.asked.lock().unwrap().clone();
            assert_eq!(asked.len(), 1);
            assert_eq!(asked[0].kind, TwoFactorKind::Redirect);
            assert_eq!(
                asked[0].hint.as_deref(),
                Some("https://www.testbank.com/authentication/1234-wertiq-983")
            );
            // The example account list: two accounts; the example
            // transactions: two booked and one pending each.
            let all = h.all_docs().await.unwrap();
            let accounts = &all["io.cozy.bank.accounts"];
            assert_eq!(accounts.len(), 2, "{accounts:?}");
            let ops = &all["io.cozy.bank.operations"];
            assert_eq!(ops.len(), 6, "{ops:?}");
            assert_eq!(ops.iter().filter(|o| o.data["isComing"] == true).count(), 2);
            for (doctype, docs) in &all {
                for doc in docs {
                    validate_stored(doctype, &doc.data)
                        .unwrap_or_else(|e| panic!("{doctype} {}: {e}", doc.data));
                }
            }
            println!("prism: {} documents, {:?}", report.created(), report.counts);
        }
        Err(e) => {
            // Only what the spec's own example answers explain is accepted.
            panic!(
                "the run against the spec mock failed: {}: {}\nprism log:\n{log}",
                e.code, e.message
            );
        }
    }
}
