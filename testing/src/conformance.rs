//! The conformance suite: what every konnector must do, checked the same
//! way for all of them against a sandbox or a cassette.
//!
//! [`check_conformance`] runs the checks and returns a
//! [`ConformanceReport`] (each [`Check`] passed, skipped with a note, or
//! failed with a message saying what failed); [`assert_conforms`] panics
//! with every failure listed.
//!
//! The checks:
//! - **manifest**: the manifest validates;
//! - **first run**: a run on a fresh installation succeeds (from a
//!   cassette: a strict replay, see [`crate::replay()`]);
//! - **hosts**: every host the run contacted (each request of the first
//!   run, recorded through the framework's `RecordingTransport`, or of the
//!   cassette) is declared in the manifest's `hosts`, the sandbox's own
//!   (loopback) address standing for the manifest's `base_url`;
//! - **documents**: the run stored at least one document, only of the
//!   manifest's `data_types`, each passing its doctype's validation
//!   ([`crate::validate_stored`]);
//! - **second run**: a second run creates no document and downloads no
//!   file again;
//! - **wrong credentials**: every secret field replaced by a wrong value,
//!   the run (for an authorization-code OAuth konnector, the consent's code
//!   exchange with a wrong client secret) fails with `LOGIN_FAILED` or one
//!   of its sub-codes, and nothing is stored (no document, no state, no
//!   file). Skipped, with a note, for a konnector without secret fields,
//!   for a sandbox that accepts a wrong client secret, and for cassettes
//!   (a scrubbed cassette replays with any credentials);
//! - **secrets**: no secret (the account's secret fields, right and wrong,
//!   the OAuth tokens and the session cookies the runs ended with) appears,
//!   raw or URL-encoded, in the captured logs (unredacted: see
//!   [`crate::LogCapture`]) or in clear in any file of the installation
//!   (store, WAL, vault, files tree, and the first run's scrubbed
//!   cassette).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use gleaner_framework::cassette::{Cassette, CassetteMode};
use gleaner_framework::manifest::OAuthGrant;
use gleaner_framework::session::Restore;
use gleaner_framework::store::DocStore;
use gleaner_framework::{ErrorCode, Konnector, KonnectorError, RunReport};
use gleaner_sandbox_kit::{SandboxDef, StartOptions};
use url::Url;

use crate::harness::{Harness, TestAccount};

/// What the suite runs the konnector against.
pub enum Source {
    /// The konnector's sandbox, started by the suite in its default
    /// scenario; its fields, secrets and base URL make the account.
    Sandbox(SandboxDef),
    /// A recorded cassette, replayed offline.
    Cassette(PathBuf),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sandbox(def) => write!(f, "Source::Sandbox({})", def.slug),
            Self::Cassette(p) => write!(f, "Source::Cassette({})", p.display()),
        }
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It could not apply; the note says why.
    Skipped(String),
    /// It failed; the message says what.
    Failed(String),
}

/// One check of the suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Its name (`manifest`, `hosts`, `documents`, `second run`,
    /// `wrong credentials`, `secrets`...).
    pub name: &'static str,
    /// How it ended.
    pub outcome: Outcome,
}

/// What [`check_conformance`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceReport {
    /// The konnector's slug.
    pub konnector: String,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

impl ConformanceReport {
    fn new(konnector: &str) -> Self {
        Self {
            konnector: konnector.to_owned(),
            checks: Vec::new(),
        }
    }

    fn record(&mut self, name: &'static str, result: Result<(), String>) {
        let outcome = match result {
            Ok(()) => Outcome::Passed,
            Err(m) => Outcome::Failed(m),
        };
        self.checks.push(Check { name, outcome });
    }

    fn skip(&mut self, name: &'static str, note: impl Into<String>) {
        self.checks.push(Check {
            name,
            outcome: Outcome::Skipped(note.into()),
        });
    }

    /// Names of the checks that passed.
    pub fn passed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Passed)
            .map(|c| c.name)
            .collect()
    }

    /// The skipped checks and their notes.
    pub fn skipped(&self) -> Vec<(&'static str, &str)> {
        self.checks
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Skipped(n) => Some((c.name, n.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The failed checks and their messages.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        self.checks
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Failed(m) => Some((c.name, m.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Whether no check failed.
    pub fn conforms(&self) -> bool {
        self.failures().is_empty()
    }
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}:", self.konnector)?;
        for c in &self.checks {
            match &c.outcome {
                Outcome::Passed => writeln!(f, "  ok      {}", c.name)?,
                Outcome::Skipped(n) => writeln!(f, "  skipped {}: {n}", c.name)?,
                Outcome::Failed(m) => writeln!(f, "  FAILED  {}: {m}", c.name)?,
            }
        }
        Ok(())
    }
}

/// Runs the suite and panics, listing every failed check, unless the
/// konnector conforms; returns the report (passed and skipped checks).
pub async fn assert_conforms(konnector: &dyn Konnector, source: Source) -> ConformanceReport {
    let report = check_conformance(konnector, source).await;
    assert!(report.conforms(), "{report}");
    report
}

/// Runs the suite; see the module documentation for the checks.
pub async fn check_conformance(konnector: &dyn Konnector, source: Source) -> ConformanceReport {
    let manifest = konnector.manifest();
    let mut report = ConformanceReport::new(&manifest.slug);
    report.record(
        "manifest",
        manifest.validate(&manifest.slug).map_err(|e| e.message),
    );
    match source {
        Source::Sandbox(def) => on_sandbox(konnector, def, &mut report).await,
        Source::Cassette(path) => on_cassette(konnector, &path, &mut report).await,
    }
    report
}

/// Wrong values for every secret of `good`, unusual enough to be found in
/// any log (URL-reserved and non-ASCII characters).
fn wrong_secrets(good: &[(String, String)]) -> Vec<(String, String)> {
    good.iter()
        .map(|(k, _)| (k.clone(), format!("wrong {k} ü&=+/%20 conformance")))
        .collect()
}

async fn on_sandbox(konnector: &dyn Konnector, def: SandboxDef, report: &mut ConformanceReport) {
    let slug = konnector.manifest().slug.clone();
    let sandbox = match def.launch(StartOptions::default()).await {
        Ok(s) => s,
        Err(e) => {
            report.record("first run", Err(format!("the sandbox did not start: {e}")));
            return;
        }
    };
    let h = match Harness::new().await {
        Ok(h) => h,
        Err(e) => {
            report.record("first run", Err(format!("no test installation: {e}")));
            return;
        }
    };
    let account = match h.sandbox_account(&slug, &sandbox).await {
        Ok(a) => a,
        Err(e) => {
            report.record("first run", Err(format!("cannot add the account: {e}")));
            return;
        }
    };
    // The first run is recorded: its exchanges say which hosts it
    // contacted, and the scan below reads the cassette file too.
    let recorded = h.dir().join("first-run.json");
    let mut options = h.run_options();
    options.cassette = Some(CassetteMode::Record(recorded.clone()));
    let first = h.run_with(konnector, &account, options).await;
    let first_ok = first.is_ok();
    report.record(
        "first run",
        first.as_ref().map(|_| ()).map_err(|e| {
            format!(
                "the run against the sandbox failed: {}: {}",
                e.code, e.message
            )
        }),
    );
    if !first_ok {
        return;
    }
    report.record(
        "hosts",
        recorded_urls(&recorded)
            .and_then(|urls| check_hosts(konnector, &urls, Some(&sandbox.base_url))),
    );
    report.record("documents", check_documents(konnector, &h).await);
    let second = h.run(konnector, &account).await;
    report.record("second run", check_second_run(&second));

    // Wrong credentials, on a fresh installation so that "nothing stored"
    // means nothing at all.
    let wrong = wrong_secrets(&sandbox.secrets);
    let wrong_harness = match Harness::new().await {
        Ok(h) => h,
        Err(e) => {
            report.record(
                "wrong credentials",
                Err(format!("no test installation: {e}")),
            );
            return;
        }
    };
    if wrong.is_empty() {
        report.skip(
            "wrong credentials",
            "the sandbox gives no secret field, so there is no wrong value to try",
        );
    } else {
        match wrong_harness
            .account_owned(
                &slug,
                sandbox.fields.clone(),
                wrong.clone(),
                Some(&sandbox.base_url),
            )
            .await
        {
            Ok(bad) => {
                check_wrong_credentials(konnector, &wrong_harness, &bad, report).await;
            }
            Err(e) => report.record(
                "wrong credentials",
                Err(format!("cannot add the account: {e}")),
            ),
        }
    }

    let mut secrets: Vec<String> = sandbox
        .secrets
        .iter()
        .chain(&wrong)
        .map(|(_, v)| v.clone())
        .collect();
    secrets.extend(runtime_secrets(&h, &account).await);
    report.record("secrets", check_secrets(&[&h, &wrong_harness], &secrets));
    drop(sandbox);
}

/// The request URLs of a cassette.
fn recorded_urls(path: &Path) -> Result<Vec<Url>, String> {
    let cassette = Cassette::load(path).map_err(|e| e.message)?;
    Ok(cassette
        .exchanges
        .iter()
        .filter_map(|e| Url::parse(&e.request.url).ok())
        .collect())
}

fn is_loopback(url: &Url) -> bool {
    matches!(
        url.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    )
}

async fn on_cassette(konnector: &dyn Konnector, path: &Path, report: &mut ConformanceReport) {
    let setup = async {
        let h = Harness::builder().sessions(false).build().await?;
        let account = h.replay_account(konnector).await?;
        Ok::<_, crate::Error>((h, account))
    };
    let (h, account) = match setup.await {
        Ok(v) => v,
        Err(e) => {
            report.record("first run", Err(format!("no test installation: {e}")));
            return;
        }
    };
    let first = h.replay(konnector, &account, path).await;
    let first_ok = first.is_ok();
    report.record(
        "first run",
        first
            .map(|_| ())
            .map_err(|e| format!("the strict replay of {} failed: {e}", path.display())),
    );
    if !first_ok {
        return;
    }
    let urls = Cassette::find(path, &konnector.manifest().slug)
        .map_err(|e| e.message)
        .and_then(|file| recorded_urls(&file));
    // A cassette recorded against a sandbox holds its loopback address,
    // which stands for the manifest's base URL.
    let endpoint = urls
        .as_ref()
        .ok()
        .and_then(|u| u.iter().find(|u| is_loopback(u)))
        .map(|u| u.origin().ascii_serialization());
    report.record(
        "hosts",
        urls.and_then(|u| check_hosts(konnector, &u, endpoint.as_deref())),
    );
    report.record("documents", check_documents(konnector, &h).await);
    let second = h
        .replay_lenient(konnector, &account, path)
        .await
        .map_err(|e| match e {
            crate::ReplayError::Run(k) => k,
            other => KonnectorError::new(ErrorCode::UnknownError, other.to_string()),
        });
    report.record("second run", check_second_run(&second));
    report.skip(
        "wrong credentials",
        "a cassette is scrubbed and replays with any credentials; run the suite on a sandbox to check refused logins",
    );
    let mut secrets: Vec<String> = account
        .secrets
        .values()
        .map(|s| s.expose().to_owned())
        .collect();
    secrets.extend(runtime_secrets(&h, &account).await);
    report.record("secrets", check_secrets(&[&h], &secrets));
}

/// The manifest's host entry for a URL: `host`, or `host:port` when the
/// port is not the scheme's default.
fn host_entry(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// Every contacted URL's host is declared; the sandbox's address stands
/// for the manifest's `base_url` (whose host must be declared too).
fn check_hosts(
    konnector: &dyn Konnector,
    urls: &[Url],
    endpoint: Option<&str>,
) -> Result<(), String> {
    let manifest = konnector.manifest();
    if urls.is_empty() {
        return Err("no HTTP exchange was seen, so the hosts contacted are unknown".into());
    }
    let endpoint = endpoint
        .and_then(|e| Url::parse(e).ok())
        .and_then(|u| host_entry(&u));
    let declared = |entry: &str| manifest.hosts.iter().any(|h| h == entry);
    let mut missing = Vec::new();
    for url in urls {
        let Some(entry) = host_entry(url) else {
            missing.push(format!("{url} (no host)"));
            continue;
        };
        let stands_for = if endpoint.as_deref() == Some(entry.as_str()) {
            Url::parse(&manifest.base_url)
                .ok()
                .and_then(|u| host_entry(&u))
                .unwrap_or_default()
        } else {
            entry
        };
        if !declared(&stands_for) && !missing.contains(&stands_for) {
            missing.push(stands_for);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "contacted hosts missing from the manifest's `hosts` ({}): {}",
            manifest.hosts.join(", "),
            missing.join(", ")
        ))
    }
}

async fn check_documents(konnector: &dyn Konnector, h: &Harness) -> Result<(), String> {
    let manifest = konnector.manifest();
    let all = h.all_docs().await.map_err(|e| e.to_string())?;
    if all.values().all(Vec::is_empty) {
        return Err("the run stored no document".into());
    }
    let mut problems = Vec::new();
    for (doctype, docs) in &all {
        if !manifest.data_types.iter().any(|d| d == doctype) {
            problems.push(format!(
                "{doctype} is stored but not declared in `data_types` ({})",
                manifest.data_types.join(", ")
            ));
        }
        for doc in docs {
            if let Err(e) = crate::validate_stored(doctype, &doc.data) {
                problems.push(format!("{doctype} {}: {e}", doc.id));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn check_second_run(second: &gleaner_framework::Result<RunReport>) -> Result<(), String> {
    let r = second
        .as_ref()
        .map_err(|e| format!("the second run failed: {}: {}", e.code, e.message))?;
    let created: Vec<String> = r
        .counts
        .iter()
        .filter(|(_, c)| c.created > 0)
        .map(|(d, c)| format!("{} {d}", c.created))
        .collect();
    let mut problems = Vec::new();
    if !created.is_empty() {
        problems.push(format!("it created {}", created.join(", ")));
    }
    if r.files_downloaded > 0 {
        problems.push(format!(
            "it downloaded {} file(s) again",
            r.files_downloaded
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the second run is not idempotent: {}",
            problems.join("; ")
        ))
    }
}

fn is_login_failed(code: ErrorCode) -> bool {
    code.as_str() == "LOGIN_FAILED" || code.as_str().starts_with("LOGIN_FAILED.")
}

async fn check_wrong_credentials(
    konnector: &dyn Konnector,
    h: &Harness,
    bad: &TestAccount,
    report: &mut ConformanceReport,
) {
    let manifest = konnector.manifest();
    let oauth_code = manifest
        .oauth
        .as_ref()
        .is_some_and(|o| o.grant == OAuthGrant::AuthorizationCode);
    let result = h.run(konnector, bad).await;
    let outcome = match &result {
        Ok(_) if oauth_code => {
            report.skip(
                "wrong credentials",
                "the sandbox accepted a wrong client secret, so a refused login cannot be shown",
            );
            return;
        }
        Ok(_) => Err("a run with wrong secrets succeeded".to_owned()),
        Err(e) if !is_login_failed(e.code) => Err(format!(
            "a run with wrong secrets failed with {} instead of LOGIN_FAILED: {}",
            e.code, e.message
        )),
        Err(_) => nothing_stored(h, bad).await,
    };
    report.record("wrong credentials", outcome);
}

async fn nothing_stored(h: &Harness, account: &TestAccount) -> Result<(), String> {
    let mut problems = Vec::new();
    match h.counts().await {
        Ok(c) if c.is_empty() => {}
        Ok(c) => problems.push(format!("documents were stored: {c:?}")),
        Err(e) => problems.push(e.to_string()),
    }
    match h.store().state(account.id()).await {
        Ok(None) => {}
        Ok(Some(_)) => problems.push("the account's state was saved".into()),
        Err(e) => problems.push(e.message),
    }
    match h.file_paths() {
        Ok(f) if f.is_empty() => {}
        Ok(f) => problems.push(format!("files were written: {f:?}")),
        Err(e) => problems.push(e.to_string()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "LOGIN_FAILED, but something was stored: {}",
            problems.join("; ")
        ))
    }
}

/// Secrets obtained during the runs: the OAuth tokens and the values of
/// the session's cookies (at least 8 characters: shorter values such as
/// `1` or `fr` are not secrets and would match anywhere).
async fn runtime_secrets(h: &Harness, account: &TestAccount) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some(tokens)) = h.oauth().load(account.id()).await {
        out.push(tokens.access_token.expose().to_owned());
        if let Some(r) = tokens.refresh_token {
            out.push(r.expose().to_owned());
        }
    }
    if let Ok(Restore::Live(session)) = h.sessions().restore(account.id()).await
        && let Ok(jar) = serde_json::from_str::<serde_json::Value>(&session.cookies)
    {
        collect_cookie_values(&jar, &mut out);
    }
    out
}

/// Cookie values from `cookie_store`'s JSON: each `raw_cookie` is
/// `name=value; attributes`.
fn collect_cookie_values(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("raw_cookie", serde_json::Value::String(raw)) => {
                        let pair = raw.split(';').next().unwrap_or("");
                        if let Some((_, value)) = pair.split_once('=')
                            && value.trim().len() >= 8
                        {
                            out.push(value.trim().to_owned());
                        }
                    }
                    _ => collect_cookie_values(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for i in items {
                collect_cookie_values(i, out);
            }
        }
        _ => {}
    }
}

/// The forms a secret takes in text: raw, form-encoded, percent-encoded.
pub(crate) fn forms(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    let mut v = vec![secret.to_owned(), form, percent];
    v.sort();
    v.dedup();
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// No secret in the captured logs, nor in clear in a data file.
fn check_secrets(harnesses: &[&Harness], secrets: &[String]) -> Result<(), String> {
    let forms: BTreeMap<String, usize> = secrets
        .iter()
        .enumerate()
        .filter(|(_, s)| s.len() >= gleaner_framework::redact::MIN_LEN)
        .flat_map(|(i, s)| forms(s).into_iter().map(move |f| (f, i)))
        .collect();
    let mut found = Vec::new();
    for h in harnesses {
        let logs = h.logs().text();
        for (form, i) in &forms {
            if logs.contains(form.as_str()) {
                found.push(format!(
                    "secret #{i} in the logs: {}",
                    h.logs()
                        .lines_with(form)
                        .join(" | ")
                        .replace(form.as_str(), "<SECRET>")
                ));
            }
        }
        match h.data_files() {
            Ok(files) => {
                for f in files {
                    let Ok(bytes) = std::fs::read(&f) else {
                        continue;
                    };
                    for (form, i) in &forms {
                        if contains(&bytes, form.as_bytes()) {
                            found.push(format!("secret #{i} in clear in {}", f.display()));
                        }
                    }
                }
            }
            Err(e) => found.push(format!("cannot list the data files: {e}")),
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        found.dedup();
        Err(found.join("; "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_are_found_in_a_jar() {
        let jar = serde_json::json!([{"raw_cookie": "SID=abcdef123456; Path=/", "path": ["/", true]},
                                     {"raw_cookie": "lang=fr"}]);
        let mut out = Vec::new();
        collect_cookie_values(&jar, &mut out);
        assert_eq!(out, ["abcdef123456"]);
    }

    #[test]
    fn forms_cover_encodings() {
        let f = forms("a b&c");
        assert!(f.contains(&"a+b%26c".to_owned()));
        assert!(f.contains(&"a%20b%26c".to_owned()));
    }

    #[test]
    fn report_lists_failures() {
        let mut r = ConformanceReport::new("x");
        r.record("manifest", Ok(()));
        r.skip("wrong credentials", "no secret");
        r.record("hosts", Err("evil.example".into()));
        assert!(!r.conforms());
        assert_eq!(r.passed(), ["manifest"]);
        let text = r.to_string();
        assert!(text.contains("FAILED  hosts: evil.example"), "{text}");
        assert!(text.contains("skipped wrong credentials: no secret"));
    }
}
