//! Runs one konnector for one account: the unit of work the CLI and the
//! scheduler share.
//!
//! [`run_konnector`] builds the [`RunContext`] (HTTP client limited to the
//! manifest's hosts, the account's state), runs the konnector under the
//! manifest's time limit inside a `konnector_run` tracing span, and then
//! either **commits everything** (files moved into place, then documents and
//! state in one store transaction) or **discards everything**.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use url::Url;

use crate::cassette::{CassetteMode, Recorder, Scrubber};
use crate::clock::{Clock, OffsetClock, SystemClock};
use crate::context::{ContextParts, OAuthSession, Progress, ProgressFn, RunAccount, RunContext};
use crate::error::{ErrorCode, KonnectorError, Result};
use crate::http::{Activity, HttpClient, HttpConfig, RetryPolicy, Transport};
use crate::konnector::Konnector;
use crate::oauth::{OAuthConfig, TokenManager};
use crate::secret::Secret;
use crate::session::Sessions;
use crate::store::{Account, CommitCounts, DocStore, FileStore, LinkSummary, RunCommit};
use crate::twofa::{TwoFactorChannel, Unattended};

/// What a successful run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run's id.
    pub run_id: String,
    /// The account.
    pub account_id: String,
    /// The konnector slug.
    pub konnector: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it committed.
    pub finished_at: DateTime<Utc>,
    /// Created, updated and skipped documents by doctype.
    pub counts: CommitCounts,
    /// Files downloaded and saved.
    pub files_downloaded: u64,
    /// Files already in the account's folder, not downloaded again.
    pub files_reused: u64,
    /// HTTP requests sent (retries included).
    pub requests: u32,
    /// HTTP retries.
    pub retries: u32,
    /// Warnings the konnector recorded.
    pub warnings: Vec<String>,
    /// Under a replay, the cassette's exchanges the run never asked for
    /// (`#<index> <METHOD> <path>`); empty otherwise.
    #[serde(default)]
    pub unused_exchanges: Vec<String>,
    /// What the linking pass after the commit did (bills meet the bank
    /// operations that paid them; see [`crate::store::links`]); `None` when
    /// the run created or changed no bill and no operation, so there was
    /// nothing new to link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<LinkSummary>,
}

impl RunReport {
    /// Documents created, all doctypes together.
    pub fn created(&self) -> u64 {
        self.counts.values().map(|c| c.created).sum()
    }
}

/// What every run of one installation shares.
#[derive(Clone)]
pub struct RunEnv {
    /// The document store.
    pub store: Arc<dyn DocStore>,
    /// The file store.
    pub files: FileStore,
    /// Retry settings for the HTTP clients.
    pub retry: RetryPolicy,
}

/// What differs between two runs of the same installation.
#[derive(Clone)]
pub struct RunOptions {
    /// Receives progress reports (a terminal progress bar).
    pub progress: Option<ProgressFn>,
    /// Where second-factor questions go ([`Unattended`] by default).
    pub two_factor: Arc<dyn TwoFactorChannel>,
    /// The run id to use (the scheduler passes its job's, so that after a
    /// crash it can tell from the account's state whether the run
    /// committed); a fresh one when `None`.
    pub run_id: Option<String>,
    /// The OAuth token manager, for konnectors with an `[oauth]` section
    /// (share one per process: it serializes refreshes).
    pub oauth: Option<Arc<TokenManager>>,
    /// Where login sessions are kept between runs (sealed by the vault);
    /// `None` turns sessions off. See [`crate::session`].
    pub sessions: Option<Sessions>,
    /// Where the run's time comes from: [`crate::RunContext::now`],
    /// `started_at` and `finished_at`. A replay overrides it with a clock
    /// starting at the cassette's recording time.
    pub clock: Arc<dyn Clock>,
    /// Record the run to a cassette, or replay one (see
    /// [`crate::cassette`]); `None`: plain HTTP.
    pub cassette: Option<CassetteMode>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            progress: None,
            two_factor: Arc::new(Unattended),
            run_id: None,
            oauth: None,
            sessions: None,
            clock: Arc::new(SystemClock),
            cassette: None,
        }
    }
}

/// Wraps a run's progress receiver so that it also shows which request the
/// HTTP client waits on ("waiting for mobile.free.fr (GET /account/)"),
/// with the konnector's last counts; the konnector's own message comes back
/// when the answer arrives.
fn with_activity(progress: ProgressFn, http: &HttpClient) -> ProgressFn {
    let last = Arc::new(std::sync::Mutex::new(Progress {
        done: 0,
        total: None,
        message: "starting".to_owned(),
    }));
    let hook_last = Arc::clone(&last);
    let hook_progress = Arc::clone(&progress);
    http.set_activity(Arc::new(move |activity: Option<&Activity>| {
        let Ok(last) = hook_last.lock().map(|l| l.clone()) else {
            return;
        };
        match activity {
            Some(a) => hook_progress(&Progress {
                message: a.to_string(),
                ..last
            }),
            None => hook_progress(&last),
        }
    }));
    Arc::new(move |p: &Progress| {
        if let Ok(mut l) = last.lock() {
            *l = p.clone();
        }
        progress(p);
    })
}

/// Removes a run's staging directory however the run ends, including when
/// its future is dropped (timeout, shutdown).
struct DiscardStaging<'a> {
    files: &'a FileStore,
    run_id: &'a str,
}

impl Drop for DiscardStaging<'_> {
    fn drop(&mut self) {
        self.files.discard(self.run_id);
    }
}

/// Runs `konnector` for `account` and commits the result, or returns the
/// error with nothing saved. Dropping the returned future (a timeout, a
/// shutdown) also leaves nothing saved.
pub async fn run_konnector(
    konnector: &dyn Konnector,
    account: &Account,
    secrets: BTreeMap<String, Secret>,
    env: &RunEnv,
    options: RunOptions,
) -> Result<RunReport> {
    let manifest = konnector.manifest();
    let run_id = options.run_id.clone().unwrap_or_else(crate::ids::new_id);
    let span = tracing::info_span!("konnector_run", konnector = %manifest.slug, account = %account.id, run = %run_id);
    async move {
        tracing::info!("run started");
        // A run id reused after a crash may find the dead run's files.
        env.files.discard(&run_id);
        let _discard = DiscardStaging {
            files: &env.files,
            run_id: &run_id,
        };
        let clock: Arc<dyn Clock> = match &options.cassette {
            Some(CassetteMode::Replay(replay)) => {
                Arc::new(OffsetClock::starting_at(replay.cassette().recorded_at))
            }
            _ => Arc::clone(&options.clock),
        };
        let started_at = clock.now();
        let recording = match &options.cassette {
            Some(CassetteMode::Record(path)) => Some((
                Recorder::new(),
                path.clone(),
                Scrubber::for_run(&secrets, &account.fields),
            )),
            Some(CassetteMode::Replay(replay)) => {
                replay.set_scrubber(Scrubber::for_run(&secrets, &account.fields));
                None
            }
            None => None,
        };
        let run = Started {
            run_id: run_id.clone(),
            clock,
            started_at,
            recorder: recording.as_ref().map(|(r, _, _)| r.clone()),
        };
        let mut result = run_inner(konnector, account, secrets, env, options, run).await;
        if let Some((recorder, path, mut scrubber)) = recording {
            let written = write_cassette(
                &recorder,
                &path,
                &manifest.slug,
                &run_id,
                started_at,
                &mut scrubber,
            );
            match (&mut result, written) {
                (_, Ok(p)) => tracing::info!(path = %p.display(), exchanges = recorder.len(), "cassette written"),
                (Ok(report), Err(e)) => report.warnings.push(e.message),
                (Err(_), Err(e)) => tracing::warn!(error = %e.message, "cassette not written"),
            }
        }
        match &result {
            Ok(r) => tracing::info!(
                created = r.created(),
                files = r.files_downloaded,
                "run committed"
            ),
            Err(e) => {
                tracing::warn!(code = %e.code, error = %e.message, "run failed, nothing saved")
            }
        }
        result
    }
    .instrument(span)
    .await
}

/// What [`run_konnector`] settles before the run proper.
struct Started {
    run_id: String,
    clock: Arc<dyn Clock>,
    started_at: DateTime<Utc>,
    recorder: Option<Recorder>,
}

/// Writes the recorded, scrubbed cassette; returns its path.
fn write_cassette(
    recorder: &Recorder,
    path: &std::path::Path,
    slug: &str,
    run_id: &str,
    started_at: DateTime<Utc>,
    scrubber: &mut Scrubber,
) -> Result<std::path::PathBuf> {
    let cassette = recorder.cassette(slug, started_at, scrubber);
    let path = if path.is_dir() {
        path.join(crate::cassette::file_name(slug, run_id))
    } else {
        path.to_owned()
    };
    cassette.save(&path)?;
    Ok(path)
}

async fn run_inner(
    konnector: &dyn Konnector,
    account: &Account,
    secrets: BTreeMap<String, Secret>,
    env: &RunEnv,
    options: RunOptions,
    started: Started,
) -> Result<RunReport> {
    let Started {
        run_id,
        clock,
        started_at,
        recorder,
    } = started;
    let manifest = Arc::new(konnector.manifest().clone());
    if account.konnector != manifest.slug {
        return Err(KonnectorError::new(
            ErrorCode::KonnectorNotFound,
            format!(
                "account {} belongs to konnector `{}`, not `{}`",
                account.id, account.konnector, manifest.slug
            ),
        ));
    }
    let mut allowed_hosts = manifest.hosts.clone();
    let base_url = match account.endpoint.as_deref() {
        // The account's endpoint passed the policy when it was added (with
        // the confirmation for a remote one); checked again here, so that
        // an account stored before the policy, or edited in the store,
        // fails once with a non-retried code.
        Some(endpoint) => crate::endpoint::check_endpoint(endpoint, true)?,
        None => Url::parse(&manifest.base_url).map_err(|e| {
            KonnectorError::new(
                ErrorCode::UnknownError,
                format!("the base URL `{}` is not a URL: {e}", manifest.base_url),
            )
        })?,
    };
    if account.endpoint.is_some()
        && let Some(host) = base_url.host_str()
    {
        allowed_hosts.push(match base_url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        });
    }
    let config = HttpConfig {
        allowed_hosts: allowed_hosts.clone(),
        request_budget: manifest.request_budget,
        retry: env.retry.clone(),
        ..HttpConfig::default()
    };
    // Under a cassette, the konnector's requests and its OAuth token calls
    // go through the same recording or replaying transport.
    let (http, token_transport, replay) = match (&options.cassette, &recorder) {
        (Some(CassetteMode::Replay(replay)), _) => {
            let t: Arc<dyn Transport> = Arc::clone(replay) as Arc<dyn Transport>;
            (
                HttpClient::with_transport(config, Arc::clone(&t)),
                Some(t),
                Some(Arc::clone(replay)),
            )
        }
        (_, Some(recorder)) => {
            let plain = HttpClient::new(config.clone())?;
            let http = HttpClient::with_transport(config, recorder.wrap(plain.transport()));
            let tokens = recorder.wrap(crate::oauth::client::token_transport()?);
            (http, Some(tokens), None)
        }
        _ => (HttpClient::new(config)?, None, None),
    };
    let progress = options.progress.map(|p| with_activity(p, &http));
    let oauth = match (&manifest.oauth, options.oauth) {
        (Some(spec), Some(manager)) => Some(OAuthSession {
            manager,
            config: OAuthConfig::resolve(spec, account.endpoint.as_deref(), &secrets)?,
        }),
        _ => None,
    };
    let previous = env.store.state(&account.id).await?;
    let mut ctx = RunContext::new(ContextParts {
        run_id: run_id.clone(),
        account: RunAccount {
            id: account.id.clone(),
            label: account.label.clone(),
            fields: account.fields.clone(),
            secrets,
            folder: account.folder.clone(),
        },
        manifest: Arc::clone(&manifest),
        base_url,
        http: http.clone(),
        store: Arc::clone(&env.store),
        files: env.files.clone(),
        state: previous.map(|s| s.state).unwrap_or(serde_json::Value::Null),
        progress,
        two_factor: options.two_factor,
    })
    .with_sessions(options.sessions)
    .with_clock(Arc::clone(&clock))
    .with_token_transport(token_transport)
    .with_recorder(recorder)
    .with_allowed_hosts(allowed_hosts);
    if let Some(session) = oauth {
        ctx.set_oauth(session);
    }
    let limit = Duration::from_secs(manifest.timeout_secs);
    let waits = ctx.two_factor_waits();
    let started = tokio::time::Instant::now();
    // The time limit counts the konnector's own work: time spent waiting
    // for a person to give a second-factor code is added back.
    let mut deadline = started + limit;
    let outcome = {
        let run = konnector.run(&mut ctx);
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => break r,
                () = tokio::time::sleep_until(deadline) => {
                    let extended = started + limit + waits.waited();
                    if waits.asking() {
                        deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                    } else if extended > deadline {
                        deadline = extended;
                    } else {
                        break Err(KonnectorError::new(
                            ErrorCode::Timeout,
                            format!("the run took longer than its {} s limit", limit.as_secs()),
                        ));
                    }
                }
            }
        }
    };
    // The browser (if the konnector started one) ends with the run, on
    // every path: here after a result or the time limit; by the context's
    // drop if this future is dropped.
    ctx.close_browser().await;
    if let Err(e) = outcome {
        // A failed run still keeps (or clears) its login session: see
        // crate::session for why.
        if let Some(warning) = ctx.finish_session().await {
            tracing::warn!(%warning, "session not saved");
        }
        return Err(e);
    }
    let identifier = ctx.identifier().map(str::to_owned);
    // Export the jar now, while the context is alive; written after the
    // commit below (a failed commit still keeps the login).
    let session_warning = ctx.finish_session().await;
    if let Some(w) = session_warning {
        ctx.push_warning(w);
    }
    let staged = ctx.into_staged();
    let finished_at = clock.now();
    // Files first: a crash after this leaves files no document points to,
    // which the next run overwrites; never a document without its file.
    let moved = env.files.promote(&staged.files)?;
    let commit = RunCommit {
        account_id: account.id.clone(),
        account_identifier: identifier,
        run_id: run_id.clone(),
        konnector: manifest.slug.clone(),
        docs: staged.docs,
        deletes: staged.deletes,
        state: staged.state,
        finished_at,
    };
    let counts = match env.store.commit_run(commit).await {
        Ok(c) => c,
        Err(e) => {
            env.files.unpromote(&moved);
            return Err(e);
        }
    };
    let mut warnings = staged.warnings;
    let links = link_after_commit(env.store.as_ref(), &counts, finished_at, &mut warnings).await;
    let stats = http.stats();
    Ok(RunReport {
        run_id,
        account_id: account.id.clone(),
        konnector: manifest.slug.clone(),
        started_at,
        finished_at,
        counts,
        files_downloaded: staged.files_downloaded,
        files_reused: staged.files_reused,
        requests: stats.requests,
        retries: stats.retries,
        warnings,
        unused_exchanges: replay.map(|r| r.unused()).unwrap_or_default(),
        links,
    })
}

/// The linking pass after a commit that created or changed bills or bank
/// operations (of any konnector: a bank run links the bills a phone
/// konnector saved last week, and the other way round).
///
/// It runs here, right after `commit_run`, because every run goes through
/// [`run_konnector`]: `gleaner run` and `gleaner demo` (through the
/// scheduler's manual jobs), the scheduler daemon, cassette replays and
/// the test harness. The run has committed by then: a failed pass is a
/// warning of the run, not its failure, and the next run that brings
/// bills or operations links again.
async fn link_after_commit(
    store: &dyn DocStore,
    counts: &CommitCounts,
    now: DateTime<Utc>,
    warnings: &mut Vec<String>,
) -> Option<LinkSummary> {
    let touched = [
        crate::bank::linking::BILLS,
        crate::bank::linking::OPERATIONS,
    ]
    .iter()
    .any(|d| counts.get(*d).is_some_and(|c| c.created + c.updated > 0));
    if !touched {
        return None;
    }
    match store.link_bills_and_operations(now).await {
        Ok(summary) => Some(summary),
        Err(e) => {
            tracing::warn!(code = %e.code, error = %e.message, "bills not linked to bank operations");
            warnings.push(format!(
                "the run is saved, but its bills were not linked to bank operations: {}",
                e.message
            ));
            None
        }
    }
}
