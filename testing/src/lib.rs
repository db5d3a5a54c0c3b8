//! The konnector test kit: what every konnector test builds on.
//!
//! - [`Harness`]: a temporary installation (store, vault, files tree, OAuth
//!   token manager, clock) that adds accounts, runs a konnector as the CLI
//!   runs it, and answers questions about what the run stored; the run's
//!   logs are captured at `TRACE` ([`LogCapture`]) so a test can search
//!   them.
//! - [`replay()`]: runs a konnector offline from a cassette, strictly: a
//!   request the cassette lacks fails with a diff, and an exchange left
//!   unused fails too.
//! - [`assert_conforms`]: the conformance suite, against a sandbox or a
//!   cassette ([`Source`]): valid manifest declaring every host contacted,
//!   valid documents, an idempotent second run, `LOGIN_FAILED` with nothing
//!   stored on wrong credentials, no secret in the logs. It returns a
//!   [`ConformanceReport`] of the checks passed and skipped.
//!
//! ```no_run
//! # async fn demo(konnector: &dyn gleaner_framework::Konnector) -> Result<(), gleaner_testing::Error> {
//! let h = gleaner_testing::Harness::new().await?;
//! let account = h.account("free-mobile", &[("login", "12345678")], &[("password", "pw")], Some("http://127.0.0.1:4000")).await?;
//! let report = h.run(konnector, &account).await?;
//! assert!(report.created() > 0);
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: this crate depends on the framework (and the
//! sandbox kit), never on `gleaner-konnectors`: it knows no provider.

#![deny(missing_docs)]

pub mod browser;
pub mod conformance;
pub mod cozy;
pub mod harness;
pub mod logs;
pub mod postgres;
pub mod prism;
pub mod replay;
pub mod validate;

pub use browser::chromium_or_skip;
pub use conformance::{
    Check, ConformanceReport, Outcome, Source, assert_conforms, check_conformance,
};
pub use harness::{Harness, HarnessBuilder, TestAccount, fast_retry, files_under};
pub use logs::LogCapture;
pub use replay::{ReplayError, ReplayOutcome, committed_cassettes, replay};
pub use validate::validate_stored;

/// A `gleaner.toml` line, `window = [h, h + 1]`, whose hour is about twelve
/// hours away from now (UTC, the default timezone).
///
/// A test that adds accounts, runs a daemon and counts jobs writes it under
/// `[scheduler]` before adding the accounts. With the default window
/// (`[0, 5]`) a test run between midnight and five would see some accounts'
/// nightly slots come due mid-test: automatic jobs (or skips) beside the
/// manual ones it queued.
pub fn window_away_from_now() -> String {
    use chrono::Timelike as _;
    let start = (chrono::Utc::now().hour() + 12) % 24;
    format!("window = [{start}, {}]\n", start + 1)
}

use gleaner_framework::KonnectorError;

/// What can go wrong setting up or inspecting a test installation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The framework refused (store, vault, run).
    #[error("{0}")]
    Konnector(#[from] KonnectorError),
    /// A file or directory could not be read or made.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
