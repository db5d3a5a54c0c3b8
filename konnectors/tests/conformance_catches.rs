//! The conformance suite can fail: the Free Mobile konnector, broken on
//! purpose in one way at a time, is caught by the check that should catch
//! it, with a message saying what failed.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use gleaner_framework::doctypes::Bill;
use gleaner_framework::filters::Currency;
use gleaner_framework::{Konnector, Manifest, Result, RunContext, async_trait};
use gleaner_konnectors::telco::free_mobile::{self, FreeMobile};
use gleaner_testing::{ConformanceReport, Outcome, Source, check_conformance};
use rust_decimal::Decimal;

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// Logs the password in clear.
    LogsPassword,
    /// Turns every failure into a success.
    SwallowsErrors,
    /// Its manifest does not declare the provider's host.
    UndeclaredHost,
    /// Its manifest does not declare the bills it saves.
    UndeclaredDoctype,
    /// Saves one more bill each run, dated by a counter.
    NotIdempotent,
}

struct Broken {
    inner: FreeMobile,
    manifest: Manifest,
    fault: Fault,
    runs: AtomicI64,
}

impl Broken {
    fn new(fault: Fault) -> Self {
        let inner = FreeMobile::new().unwrap();
        let mut manifest = inner.manifest().clone();
        match fault {
            Fault::UndeclaredHost => manifest.hosts = vec!["elsewhere.example".into()],
            Fault::UndeclaredDoctype => manifest.data_types.retain(|d| d != "io.cozy.bills"),
            _ => {}
        }
        Self {
            inner,
            manifest,
            fault,
            runs: AtomicI64::new(0),
        }
    }
}

#[async_trait]
impl Konnector for Broken {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        if self.fault == Fault::LogsPassword {
            let password = ctx.secret("password")?.expose().to_owned();
            tracing::debug!("logging in with {password}");
        }
        let result = self.inner.run(ctx).await;
        if self.fault == Fault::SwallowsErrors {
            return Ok(());
        }
        if self.fault == Fault::NotIdempotent {
            let n = self.runs.fetch_add(1, Ordering::SeqCst);
            let date = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(n);
            ctx.save(&Bill::new("Free Mobile", date, Decimal::ONE, Currency::EUR))?;
        }
        result
    }
}

fn sandbox() -> Source {
    Source::Sandbox(free_mobile::sandbox::definition())
}

fn failure<'a>(report: &'a ConformanceReport, check: &str) -> &'a str {
    report
        .checks
        .iter()
        .find_map(|c| match &c.outcome {
            Outcome::Failed(m) if c.name == check => Some(m.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("`{check}` did not fail:\n{report}"))
}

#[tokio::test]
async fn a_logged_password_fails_the_secrets_check() {
    let report = check_conformance(&Broken::new(Fault::LogsPassword), sandbox()).await;
    let m = failure(&report, "secrets");
    assert!(m.contains("in the logs") && m.contains("<SECRET>"), "{m}");
    assert_eq!(report.failures().len(), 1, "{report}");
}

#[tokio::test]
async fn a_konnector_hiding_a_refused_login_fails_the_wrong_credentials_check() {
    let report = check_conformance(&Broken::new(Fault::SwallowsErrors), sandbox()).await;
    let m = failure(&report, "wrong credentials");
    assert!(m.contains("succeeded"), "{m}");
}

#[tokio::test]
async fn an_undeclared_host_fails_the_hosts_check() {
    let report = check_conformance(&Broken::new(Fault::UndeclaredHost), sandbox()).await;
    let m = failure(&report, "hosts");
    assert!(m.contains("mobile.free.fr"), "{m}");
}

#[tokio::test]
async fn an_undeclared_doctype_fails_the_documents_check() {
    let report = check_conformance(&Broken::new(Fault::UndeclaredDoctype), sandbox()).await;
    let m = failure(&report, "documents");
    assert!(
        m.contains("io.cozy.bills is stored but not declared"),
        "{m}"
    );
}

#[tokio::test]
async fn a_bill_saved_anew_each_run_fails_the_second_run_check() {
    let report = check_conformance(&Broken::new(Fault::NotIdempotent), sandbox()).await;
    let m = failure(&report, "second run");
    assert!(m.contains("it created 1 io.cozy.bills"), "{m}");
}
