//! Stoplight Prism serving a provider's official OpenAPI file on loopback:
//! the "against the spec" check of API konnectors.
//!
//! Prism comes from the npm registry (`npm install @stoplight/prism-cli@5`,
//! which `.ci/run` does under `.ci/`). [`PrismSpec::find`] finds it through
//! `GLEANER_PRISM` (the `prism` executable) or
//! `<repo>/.ci/node_modules/.bin/prism`, and the spec through
//! `GLEANER_SPECS` (a folder) or `<repo>/../shared/specs`. Without them it
//! prints one `skipped:` line and returns `None`, unless `CI` is set: then
//! it panics, since CI must run the check.
//!
//! [`PrismServer`] runs `prism mock` (static mode: each answer is the
//! spec's example) on a free loopback port, in its own process group, and
//! kills that group when dropped, however the test ends (`npx` and node
//! leave children behind when only the parent is killed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install Prism, for the skip line and the CI failure.
pub const INSTALL: &str = "npm install @stoplight/prism-cli@5 in .ci/, or set GLEANER_PRISM";

/// How long Prism may take to load a spec and listen.
const START_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Prism executable and one spec file.
#[derive(Debug, Clone)]
pub struct PrismSpec {
    /// The `prism` executable.
    pub prism: PathBuf,
    /// The OpenAPI file.
    pub spec: PathBuf,
}

impl PrismSpec {
    /// Prism and the spec file `spec_file` (a name in the specs folder),
    /// or `None` after printing one `skipped:` line naming what is missing.
    ///
    /// # Panics
    /// When something is missing and `CI` is set.
    pub fn find(spec_file: &str) -> Option<Self> {
        let prism = std::env::var_os("GLEANER_PRISM")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".ci/node_modules/.bin/prism"));
        let specs = std::env::var_os("GLEANER_SPECS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("../shared/specs"));
        let spec = specs.join(spec_file);
        let missing = if !prism.is_file() {
            format!("prism not installed at {} ({INSTALL})", prism.display())
        } else if !spec.is_file() {
            format!("{} not found (set GLEANER_SPECS)", spec.display())
        } else {
            return Some(Self { prism, spec });
        };
        assert!(
            std::env::var_os("CI").is_none(),
            "{missing}; CI must run this test"
        );
        println!("skipped: {missing}");
        None
    }
}

/// A running `prism mock`; dropping it kills its process group.
#[derive(Debug)]
pub struct PrismServer {
    child: Child,
    url: String,
    log: PathBuf,
}

impl PrismServer {
    /// Starts Prism on `spec` (the found one, or a variant written by the
    /// test) on a free loopback port, logging to a file in `dir`, and waits
    /// until it listens (it loads the spec first).
    ///
    /// # Panics
    /// When Prism cannot start, exits, or does not listen within 120 s.
    pub fn start(prism: &Path, spec: &Path, dir: &Path) -> Self {
        #[cfg(unix)]
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free loopback port: {e}"));
        let log = dir.join(format!("prism-{port}.log"));
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share {}: {e}", log.display()));
        let mut cmd = Command::new(prism);
        cmd.args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        #[cfg(unix)]
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prism.display()));
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "prism exited ({status}) before it listened:\n{}",
                    server.log()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "prism did not listen within {START_TIMEOUT:?}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Its base URL (`http://127.0.0.1:PORT`, no path: Prism serves the
    /// spec's raw paths).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it logged so far (each request, and its verdict on it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log lines where Prism refused a request the spec does not allow.
    pub fn refused(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("Request terminated") || l.contains("Violation: request"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for PrismServer {
    fn drop(&mut self) {
        // The child leads its own group (process_group(0)): its id is the
        // group's. Kill the group (node and anything it started), then
        // reap the child.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
