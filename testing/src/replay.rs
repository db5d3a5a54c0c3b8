//! Strict replays of recorded cassettes (see
//! [`gleaner_framework::cassette`]): the run answers every request from the
//! cassette, nothing leaves the process, a request the cassette lacks fails
//! the run with the replay's diff against the nearest recorded one, and an
//! exchange the run never asked for fails the replay.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gleaner_framework::cassette::{Cassette, CassetteMode, ReplayTransport};
use gleaner_framework::manifest::FieldSpec;
use gleaner_framework::oauth::TokenSet;
use gleaner_framework::{Konnector, KonnectorError, RunReport, Secret};

use crate::harness::{Harness, TestAccount};

/// Why a strict replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The test installation could not be set up.
    #[error("cannot set up the replay: {0}")]
    Setup(#[from] crate::Error),
    /// The cassette does not load (missing, not JSON, another format).
    #[error("{}", .0.message)]
    Cassette(KonnectorError),
    /// The run failed; a request missing from the cassette shows here, its
    /// message holding the diff against the nearest recorded request.
    #[error("the replayed run failed: {}: {}", .0.code, .0.message)]
    Run(KonnectorError),
    /// The run succeeded without using every exchange of the cassette.
    #[error("the run never used {} exchange(s) of the cassette: {}", .unused.len(), .unused.join(", "))]
    Unused {
        /// The unused exchanges, as `#<index> <METHOD> <path?query>`.
        unused: Vec<String>,
        /// The run's report.
        report: Box<RunReport>,
    },
}

/// What a successful strict replay gives: the run's report, and the
/// installation it ran in (to look at the documents and files).
#[derive(Debug)]
pub struct ReplayOutcome {
    /// The run's report.
    pub report: RunReport,
    /// The installation the replay ran in.
    pub harness: Harness,
    /// The account it ran for.
    pub account: TestAccount,
}

/// A value for a field of `spec`: digits when its pattern asks for digits
/// (`^\d{N}$`, `^\d{N,M}$`), else a readable placeholder. A replay scrubs
/// the run's own field values to the cassette's placeholders, so any value
/// matches.
fn placeholder(name: &str, spec: &FieldSpec) -> String {
    let digits = spec
        .pattern
        .as_deref()
        .and_then(|p| p.strip_prefix("^\\d{"))
        .and_then(|p| p.strip_suffix("}$"))
        .and_then(|n| n.split(',').next())
        .and_then(|n| n.trim().parse::<usize>().ok());
    match digits {
        Some(n) => "7".repeat(n.max(1)),
        None => format!("replay-{name}"),
    }
}

impl Harness {
    /// An account of `konnector` for replays: every manifest field, secret
    /// and OAuth callback field given a placeholder value (the replay scrubs them to the
    /// cassette's placeholders), and, for an OAuth konnector, stand-in
    /// tokens (the cassette answers the API calls whatever the bearer).
    pub async fn replay_account(
        &self,
        konnector: &dyn Konnector,
    ) -> Result<TestAccount, crate::Error> {
        let manifest = konnector.manifest();
        let mut fields = Vec::new();
        let mut secrets = Vec::new();
        for (name, spec) in &manifest.fields {
            let value = placeholder(name, spec);
            if spec.kind.is_secret() {
                secrets.push((name.clone(), value));
            } else {
                fields.push((name.clone(), value));
            }
        }
        // Fields an OAuth consent hands back (Enedis's `usage_point_id`)
        // are the account's fields after the consent, scrubbed alike.
        if let Some(oauth) = &manifest.oauth {
            for name in &oauth.callback_fields {
                fields.push((name.clone(), format!("replay-{name}")));
            }
        }
        let account = self
            .account_owned(&manifest.slug, fields, secrets, None)
            .await?;
        if manifest.oauth.is_some() {
            let tokens = TokenSet {
                access_token: Secret::new("replay-access-token"),
                refresh_token: Some(Secret::new("replay-refresh-token")),
                expires_at: None,
            };
            self.oauth().save(account.id(), &tokens).await?;
        }
        Ok(account)
    }

    /// Replays the cassette at `path` (a file, or a folder whose newest
    /// cassette of the konnector is taken) for `account`, strictly: see
    /// [`replay`].
    pub async fn replay(
        &self,
        konnector: &dyn Konnector,
        account: &TestAccount,
        path: &Path,
    ) -> Result<RunReport, ReplayError> {
        let transport = load(konnector, path)?;
        let report = self
            .replay_with(konnector, account, Arc::clone(&transport))
            .await
            .map_err(ReplayError::Run)?;
        let unused = transport.unused();
        if unused.is_empty() {
            Ok(report)
        } else {
            Err(ReplayError::Unused {
                unused,
                report: Box::new(report),
            })
        }
    }

    /// Replays without the strictness on unused exchanges (a second run
    /// that reuses what the first stored sends fewer requests).
    pub async fn replay_lenient(
        &self,
        konnector: &dyn Konnector,
        account: &TestAccount,
        path: &Path,
    ) -> Result<RunReport, ReplayError> {
        let transport = load(konnector, path)?;
        self.replay_with(konnector, account, transport)
            .await
            .map_err(ReplayError::Run)
    }

    async fn replay_with(
        &self,
        konnector: &dyn Konnector,
        account: &TestAccount,
        transport: Arc<ReplayTransport>,
    ) -> Result<RunReport, KonnectorError> {
        let mut options = self.run_options();
        // A restored session would skip requests the cassette holds.
        options.sessions = None;
        options.cassette = Some(CassetteMode::Replay(transport));
        self.run_with(konnector, account, options).await
    }
}

fn load(konnector: &dyn Konnector, path: &Path) -> Result<Arc<ReplayTransport>, ReplayError> {
    let file = Cassette::find(path, &konnector.manifest().slug).map_err(ReplayError::Cassette)?;
    let cassette = Cassette::load(&file).map_err(ReplayError::Cassette)?;
    Ok(Arc::new(ReplayTransport::new(cassette)))
}

/// Replays the cassette at `path` into a fresh [`Harness`], for an account
/// made by [`Harness::replay_account`]. Strict: a request missing from the
/// cassette fails ([`ReplayError::Run`], with the replay's diff), and so
/// does an exchange left unused ([`ReplayError::Unused`], listing them).
pub async fn replay(konnector: &dyn Konnector, path: &Path) -> Result<ReplayOutcome, ReplayError> {
    let harness = Harness::new().await?;
    let account = harness.replay_account(konnector).await?;
    let report = harness.replay(konnector, &account, path).await?;
    Ok(ReplayOutcome {
        report,
        harness,
        account,
    })
}

/// The cassettes committed for konnector `slug`: the `.json` files of the
/// workspace's `fixtures/<slug>/cassettes/`, sorted (none when the folder
/// does not exist).
pub fn committed_cassettes(slug: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(slug)
        .join("cassettes");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    out.sort();
    out
}
