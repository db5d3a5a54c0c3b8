//! The accounts: the home page (every account and its status), an
//! account's page (last success and error in plain words with the next
//! step, job history, the running job's progress, the second-factor prompt
//! pushed by server-sent events) and its actions (run now, edit
//! credentials, pause and resume, remove).
//!
//! Every action is a plain form POST answered by a 303 to a page with a
//! one-time message, so all of it works with scripts off; `static/app.js`
//! only reloads the account page when its newest job changes state (the
//! `state` events of `/accounts/{id}/events`) and moves the progress bar.

mod words;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use gleaner_framework::Progress;
use gleaner_framework::store::Account;
use gleaner_scheduler::twofa::seal_code;
use gleaner_scheduler::{Job, JobCode, JobFilter, JobState, TriggerKind, TriggerState};

use super::auth::Session;
use super::render::{self, Layout, Nav, WebError};
use super::security::CsrfForm;
use super::state::WebState;
use crate::accounts;
use gleaner_framework::{ErrorCode, UserAction};

/// How often an account's event stream looks at the queue.
const EVENTS_POLL: Duration = Duration::from_millis(400);

/// How long one event stream lasts; the browser then reconnects (through
/// the session wall again) and gets the current state first.
const EVENTS_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The most progress entries kept (jobs whose end nobody watched are
/// dropped oldest first).
const PROGRESS_ENTRIES: usize = 256;

/// How many past runs an account page lists.
const HISTORY: u32 = 20;

use gleaner_scheduler::JobProgressFn;

/// The latest progress of the jobs this process runs, by job id. The
/// scheduler's progress hook ([`ProgressBoard::hook`]) writes it; the
/// account pages and their event streams read it. An entry is dropped when
/// a page or stream sees its job ended.
#[derive(Clone, Default)]
pub struct ProgressBoard {
    jobs: Arc<Mutex<HashMap<i64, Progress>>>,
}

impl ProgressBoard {
    /// The callback for `Scheduler.progress`: records each job's latest
    /// progress.
    pub fn hook(&self) -> JobProgressFn {
        let board = self.clone();
        Arc::new(move |job, progress| board.set(job, progress.clone()))
    }

    /// A job's latest progress, if it reported any.
    pub fn get(&self, job: i64) -> Option<Progress> {
        self.lock().get(&job).cloned()
    }

    /// Drops an ended job's entry.
    pub fn forget(&self, job: i64) {
        self.lock().remove(&job);
    }

    fn set(&self, job: i64, progress: Progress) {
        let mut jobs = self.lock();
        if jobs.len() >= PROGRESS_ENTRIES
            && !jobs.contains_key(&job)
            && let Some(oldest) = jobs.keys().min().copied()
        {
            jobs.remove(&oldest);
        }
        jobs.insert(job, progress);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Progress>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `/`, `/accounts/{id}` and the account's actions and events.
pub fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/", get(home))
        .route("/accounts/{id}", get(account_page))
        .route("/accounts/{id}/events", get(events))
        .route("/accounts/{id}/2fa", post(two_factor))
        .route("/accounts/{id}/run", post(run_now))
        .route("/accounts/{id}/pause", post(pause))
        .route("/accounts/{id}/resume", post(resume))
        .route("/accounts/{id}/edit", get(edit_form).post(edit))
        .route("/accounts/{id}/remove", get(remove_form).post(remove))
}

// ---- what the pages share ----------------------------------------------

/// An account's status at a glance (its badge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// A run waits for the person's code or approval.
    WaitingForYou,
    /// A run is going.
    Running,
    /// The last run needs the person: automatic runs are skipped.
    NeedsYou,
    /// Automatic runs are paused.
    Paused,
    /// A run waits for a worker.
    Queued,
    /// The last run failed; Gleaner tries again.
    Failing,
    /// The last run succeeded.
    Ok,
    /// Never run.
    New,
}

impl Status {
    /// The badge's text.
    fn word(self) -> &'static str {
        match self {
            Self::WaitingForYou => "waiting for you",
            Self::Running => "running",
            Self::NeedsYou => "needs you",
            Self::Paused => "paused",
            Self::Queued => "queued",
            Self::Failing => "failing",
            Self::Ok => "ok",
            Self::New => "never run",
        }
    }

    /// The badge's class.
    fn class(self) -> &'static str {
        match self {
            Self::WaitingForYou | Self::Failing => "warn",
            Self::NeedsYou => "bad",
            Self::Ok => "ok",
            _ => "",
        }
    }
}

/// The last error, in plain words.
struct ErrorView {
    /// What went wrong, for a person.
    sentence: String,
    /// The code, for the small print.
    code: String,
    /// The run's own message (secrets masked), for the small print.
    message: Option<String>,
    /// When.
    at: String,
}

/// The next step: a link, the run button, or a sentence.
struct StepView {
    /// The link's, button's or sentence's text.
    text: String,
    /// Where the link goes.
    href: Option<String>,
    /// Whether the step is running the account again (a POST button).
    run: bool,
}

/// An account's state, as the home page and its own page show it.
struct Overview {
    status: Status,
    last_success: String,
    next_run: String,
    error: Option<ErrorView>,
    step: Option<StepView>,
    paused: bool,
}

/// The konnector's name (its slug if this build lacks it).
fn provider_name(state: &WebState, slug: &str) -> String {
    state
        .app
        .registry
        .get(slug)
        .map(|e| e.konnector.manifest().name.clone())
        .unwrap_or_else(|_| slug.to_owned())
}

/// A time in the installation's time zone.
fn local(state: &WebState, t: DateTime<Utc>) -> String {
    t.with_timezone(&state.app.config.timezone)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn local_or(state: &WebState, t: Option<DateTime<Utc>>, none: &str) -> String {
    t.map_or_else(|| none.to_owned(), |t| local(state, t))
}

/// The account with this id, or a 404 page.
async fn account_or_404(state: &WebState, id: &str) -> Result<Account, WebError> {
    state.app.store.get_account(id).await?.ok_or_else(|| {
        WebError::NotFound("there is no such account (it may have been removed)".into())
    })
}

/// A 303 to `path` with a one-time message.
fn back(state: &WebState, session: &Session, path: &str, message: impl Into<String>) -> Response {
    state.auth.set_flash(session, message);
    Redirect::to(path).into_response()
}

/// A step in words for a typed next step.
fn step_for(action: UserAction, account_id: &str, provider: &str, retry: &str) -> StepView {
    let link = |text: &str, href: String| StepView {
        text: text.to_owned(),
        href: Some(href),
        run: false,
    };
    let run = |text: String| StepView {
        text,
        href: None,
        run: true,
    };
    let sentence = |text: String| StepView {
        text,
        href: None,
        run: false,
    };
    match action {
        UserAction::UpdateCredentials => {
            link("Update the credentials", format!("/accounts/{account_id}/edit"))
        }
        UserAction::GiveConsentAgain => {
            link("Give consent again", format!("/accounts/{account_id}/consent"))
        }
        UserAction::AnswerTwoFactor => run("Run it now and type the code".to_owned()),
        UserAction::ActOnProviderSite => run(format!(
            "Done on {provider}'s site? Run it again"
        )),
        UserAction::WaitForProvider => {
            sentence(format!("Nothing to do: Gleaner tries again at {retry}."))
        }
        UserAction::UpdateKonnector => sentence(
            "Nothing to do here: update Gleaner when a fixed version is out (report it if the latest fails too)."
                .to_owned(),
        ),
        UserAction::FreeDiskSpace => run("Space freed? Run it again".to_owned()),
        UserAction::SeeJobs => link("See its runs", format!("/accounts/{account_id}#jobs")),
        UserAction::SwitchVaultToPassphrase => sentence(
            "On the server, switch the vault to a passphrase: gleaner vault rotate --to-passphrase."
                .to_owned(),
        ),
    }
}

/// An account's status from its trigger and its active job (running,
/// waiting for the person, or queued).
fn overview(
    state: &WebState,
    account_id: &str,
    provider: &str,
    trigger: Option<&TriggerState>,
    active: Option<&Job>,
) -> Overview {
    let paused = trigger.is_some_and(|t| t.paused);
    let blocked = trigger.and_then(|t| t.blocked_code.clone());
    let errored = trigger.is_some_and(|t| t.status == "errored");
    let retry_job =
        active.filter(|j| j.state == JobState::Queued && j.trigger == TriggerKind::Retry);
    let status = match active.map(|j| j.state) {
        Some(JobState::AwaitingUser) => Status::WaitingForYou,
        Some(JobState::Running) => Status::Running,
        _ if blocked.is_some() => Status::NeedsYou,
        _ if paused => Status::Paused,
        Some(JobState::Queued) if retry_job.is_none() => Status::Queued,
        _ if errored || retry_job.is_some() => Status::Failing,
        _ if trigger.is_some_and(|t| t.status == "done") => Status::Ok,
        _ => Status::New,
    };
    let next_at = match (retry_job, trigger) {
        (Some(j), _) => Some(j.not_before),
        _ if paused || blocked.is_some() => None,
        (None, Some(t)) => Some(t.next_run_at),
        (None, None) => None,
    };
    let next_run = if paused {
        "paused".to_owned()
    } else if blocked.is_some() {
        "skipped until fixed".to_owned()
    } else {
        local_or(state, next_at, "-")
    };
    let code = blocked.or_else(|| {
        trigger
            .filter(|_| errored)
            .and_then(|t| t.last_error_code.clone())
    });
    let retry_text = next_at.map(|t| local(state, t));
    let error = code.as_ref().map(|code| ErrorView {
        sentence: words::error_sentence(code, provider, retry_text.as_deref()),
        code: code.to_string(),
        message: trigger.and_then(|t| t.last_error_message.clone()),
        at: local_or(state, trigger.and_then(|t| t.last_failure), "-"),
    });
    let step = if status == Status::WaitingForYou {
        Some(StepView {
            text: "Type the code".to_owned(),
            href: Some(format!("/accounts/{account_id}#twofa")),
            run: false,
        })
    } else if matches!(status, Status::Running | Status::Queued) {
        None
    } else {
        code.as_ref()
            .and_then(JobCode::error_code)
            .and_then(ErrorCode::next_step)
            .map(|action| {
                step_for(
                    action,
                    account_id,
                    provider,
                    retry_text.as_deref().unwrap_or("the next scheduled run"),
                )
            })
    };
    Overview {
        status,
        last_success: local_or(state, trigger.and_then(|t| t.last_success), "never"),
        next_run,
        error,
        step,
        paused,
    }
}

/// The running, waiting or queued jobs of every account (at most one
/// active and one queued each), the active one first.
async fn active_jobs(state: &WebState, account_id: Option<&str>) -> Result<Vec<Job>, WebError> {
    let mut jobs = state
        .scheduler
        .queue
        .jobs(&JobFilter {
            account_id: account_id.map(str::to_owned),
            states: vec![JobState::Running, JobState::AwaitingUser, JobState::Queued],
            limit: 10_000,
            ..JobFilter::default()
        })
        .await?;
    jobs.sort_by_key(|j| (j.state == JobState::Queued, -j.id));
    Ok(jobs)
}

// ---- the home page -------------------------------------------------------

/// One account on the home page.
struct AccountRow {
    id: String,
    label: String,
    konnector: String,
    status: Status,
    last_success: String,
    next_run: String,
    step: Option<StepView>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    layout: Layout,
    accounts: Vec<AccountRow>,
}

/// `GET /`: every account with its status.
async fn home(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
) -> Result<Response, WebError> {
    let triggers: HashMap<String, TriggerState> = state
        .scheduler
        .overview()
        .await?
        .into_iter()
        .map(|(t, _)| (t.account_id.clone(), t))
        .collect();
    let active = active_jobs(&state, None).await?;
    let accounts = state
        .app
        .store
        .list_accounts()
        .await?
        .into_iter()
        .map(|a| {
            let provider = provider_name(&state, &a.konnector);
            let job = active.iter().find(|j| j.account_id == a.id);
            let o = overview(&state, &a.id, &provider, triggers.get(&a.id), job);
            AccountRow {
                status: o.status,
                last_success: o.last_success,
                next_run: o.next_run,
                step: o.step.map(|s| StepView {
                    // A button of the account page is a link here.
                    href: s
                        .href
                        .or_else(|| s.run.then(|| format!("/accounts/{}", a.id))),
                    ..s
                }),
                id: a.id,
                label: a.label,
                konnector: provider,
            }
        })
        .collect();
    Ok(render::page(&Home {
        layout: Layout::new(&state, &session, "Your accounts", Nav::Accounts),
        accounts,
    }))
}

// ---- the account page ----------------------------------------------------

/// The account's active job, as its page shows it.
struct ActiveView {
    id: i64,
    state_word: &'static str,
    state_class: &'static str,
    /// `sms`, `email`, `app_code`, `app` or `redirect` while it waits for
    /// the person.
    waiting: Option<String>,
    /// What the prompt says (where the code went).
    prompt: String,
    /// The page to open for a redirect (an http(s) link only).
    link: Option<String>,
    /// Queued, not started yet.
    queued: bool,
    started: String,
    done: u64,
    total: Option<u64>,
    progress_text: String,
}

/// One past or current run in the history table.
struct JobRow {
    id: i64,
    trigger: &'static str,
    queued: String,
    started: String,
    ended: String,
    state_word: &'static str,
    state_class: &'static str,
    created: String,
    result: String,
    code: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    id: String,
    label: String,
    provider: String,
    folder: String,
    o: Overview,
    data_state: String,
    job: Option<ActiveView>,
    history: Vec<JobRow>,
}

/// What a done job imported ("20 bills, 20 files imported") and how many
/// documents it created.
fn imported(job: &Job) -> (u64, String) {
    let counts = job
        .report
        .as_ref()
        .and_then(|r| r.get("counts"))
        .and_then(|c| c.as_object());
    let mut total = 0;
    let mut parts = Vec::new();
    for (doctype, c) in counts.into_iter().flatten() {
        let n = c.get("created").and_then(|n| n.as_u64()).unwrap_or(0);
        if n > 0 {
            total += n;
            parts.push(words::documents(doctype, n));
        }
    }
    if parts.is_empty() {
        (0, "nothing new".to_owned())
    } else {
        (total, format!("{} imported", parts.join(", ")))
    }
}

fn job_row(state: &WebState, provider: &str, j: &Job) -> JobRow {
    let (state_word, state_class) = words::job_state(j.state);
    let (created, result, code) = match j.state {
        JobState::Done => {
            let (n, text) = imported(j);
            (n.to_string(), text, None)
        }
        JobState::Errored | JobState::Skipped => (
            String::new(),
            j.error_code
                .as_ref()
                .map(|c| words::error_sentence(c, provider, None))
                .unwrap_or_default(),
            j.error_code.as_ref().map(JobCode::to_string),
        ),
        _ => (String::new(), String::new(), None),
    };
    JobRow {
        id: j.id,
        trigger: words::trigger(j.trigger),
        queued: local(state, j.queued_at),
        started: local_or(state, j.started_at, ""),
        ended: local_or(state, j.finished_at, ""),
        state_word,
        state_class,
        created,
        result,
        code,
    }
}

/// The `{job id}:{state}` of the newest job (empty without any): the
/// page's `data-state` and the `state` event's data.
fn state_key(job: Option<&Job>) -> String {
    job.map(|j| format!("{}:{}", j.id, j.state.as_str()))
        .unwrap_or_default()
}

/// `GET /accounts/{id}`
async fn account_page(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let account = account_or_404(&state, &id).await?;
    let provider = provider_name(&state, &account.konnector);
    state.scheduler.sync_triggers().await?;
    let trigger = state.scheduler.queue.trigger(&account.id).await?;
    let active = active_jobs(&state, Some(&account.id)).await?;
    let history = state
        .scheduler
        .queue
        .jobs(&JobFilter {
            account_id: Some(account.id.clone()),
            limit: HISTORY,
            ..JobFilter::default()
        })
        .await?;
    let current = active.first();
    let mut o = overview(&state, &account.id, &provider, trigger.as_ref(), current);
    if o.status == Status::WaitingForYou {
        // The prompt is on this page, right below.
        o.step = None;
    }
    if let Some(newest) = history.first()
        && !matches!(newest.state, JobState::Running | JobState::AwaitingUser)
    {
        state.progress.forget(newest.id);
    }
    let job = current.map(|j| {
        let (state_word, state_class) = words::job_state(j.state);
        let waiting = (j.state == JobState::AwaitingUser)
            .then(|| j.twofa_kind.clone().unwrap_or_else(|| "email".to_owned()));
        let progress = state.progress.get(j.id);
        ActiveView {
            id: j.id,
            state_word,
            state_class,
            prompt: waiting
                .as_deref()
                .map(|k| words::twofa_prompt(k, j.twofa_hint.as_deref(), &provider))
                .unwrap_or_default(),
            link: j
                .twofa_hint
                .clone()
                .filter(|_| waiting.as_deref() == Some("redirect"))
                .filter(|h| h.starts_with("https://") || h.starts_with("http://")),
            waiting,
            queued: j.state == JobState::Queued,
            started: local_or(&state, j.started_at, ""),
            done: progress.as_ref().map_or(0, |p| p.done),
            total: progress.as_ref().and_then(|p| p.total),
            progress_text: progress.map(|p| p.message).unwrap_or_default(),
        }
    });
    let page = AccountPage {
        layout: Layout::new(&state, &session, account.label.clone(), Nav::Accounts),
        data_state: state_key(history.first()),
        history: history
            .iter()
            .map(|j| job_row(&state, &provider, j))
            .collect(),
        id: account.id,
        label: account.label,
        folder: account.folder,
        provider,
        o,
        job,
    };
    Ok(render::page(&page))
}

// ---- live updates ------------------------------------------------------------

/// What one event stream remembers between two looks at the queue.
struct Watch {
    state: Arc<WebState>,
    account_id: String,
    sent_state: Option<String>,
    sent_progress: Option<Progress>,
    first: bool,
    until: tokio::time::Instant,
    /// Ends at SIGINT/SIGTERM, so that an open page does not hold the
    /// server's graceful shutdown.
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Watch {
    /// The events since the last look: `state` when the newest job's
    /// `{id}:{state}` changed, `progress` when a running job moved.
    async fn look(&mut self) -> Vec<Event> {
        let newest = match self
            .state
            .scheduler
            .queue
            .jobs(&JobFilter {
                account_id: Some(self.account_id.clone()),
                limit: 1,
                ..JobFilter::default()
            })
            .await
        {
            Ok(jobs) => jobs.into_iter().next(),
            Err(e) => {
                tracing::warn!(error = %e, "an account's event stream cannot read the queue");
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        let key = state_key(newest.as_ref());
        if self.sent_state.as_ref() != Some(&key) {
            events.push(Event::default().event("state").data(key.clone()));
            self.sent_state = Some(key);
        }
        if let Some(job) = &newest {
            if job.state == JobState::Running {
                if let Some(p) = self.state.progress.get(job.id)
                    && self.sent_progress.as_ref() != Some(&p)
                {
                    let data = serde_json::json!({
                        "done": p.done,
                        "total": p.total,
                        "message": p.message,
                    });
                    events.push(Event::default().event("progress").data(data.to_string()));
                    self.sent_progress = Some(p);
                }
            } else if job.state != JobState::AwaitingUser {
                self.state.progress.forget(job.id);
            }
        }
        events
    }
}

/// `GET /accounts/{id}/events`: server-sent events about the account's
/// newest job, until the page is left (the stream is dropped), the server
/// stops, or [`EVENTS_LIFETIME`] passes (the browser reconnects).
async fn events(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let account = account_or_404(&state, &id).await?;
    // Ends with the server: an open page never holds up its shutdown.
    let mut stopping = state.stopping.clone();
    let stop: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    let watch = Watch {
        state,
        account_id: account.id,
        sent_state: None,
        sent_progress: None,
        first: true,
        until: tokio::time::Instant::now() + EVENTS_LIFETIME,
        stop,
    };
    let stream = futures_util::stream::unfold(watch, |mut w| async move {
        if !w.first {
            tokio::select! {
                () = tokio::time::sleep(EVENTS_POLL) => {}
                () = &mut w.stop => return None,
            }
        }
        w.first = false;
        if tokio::time::Instant::now() >= w.until {
            return None;
        }
        let events = w.look().await;
        Some((
            futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>)),
            w,
        ))
    })
    .flatten();
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

// ---- actions -------------------------------------------------------------

/// `POST /accounts/{id}/2fa` (field `code`): gives the code to the run
/// that waits for it.
async fn two_factor(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, WebError> {
    let account = account_or_404(&state, &id).await?;
    let page = format!("/accounts/{}", account.id);
    let code = form.get("code").unwrap_or_default().trim();
    if code.is_empty() {
        return Ok(back(
            &state,
            &form.session,
            &page,
            "Type the code first, then send it.",
        ));
    }
    // The vault the server opened at start (`App::vault`'s future is not
    // `Send`: its passphrase prompt is a `&dyn Fn`).
    let vault =
        state.scheduler.vault.clone().ok_or_else(|| {
            WebError::Internal(anyhow::anyhow!("the server runs without its vault"))
        })?;
    let sealed = seal_code(&vault, &account.id, code)?;
    let given =
        gleaner_scheduler::twofa::give_code(&*state.scheduler.queue, &account.id, &sealed).await;
    match given {
        Ok(_) => Ok(back(
            &state,
            &form.session,
            &page,
            "Code sent: the import goes on.",
        )),
        Err(gleaner_scheduler::SchedulerError::NoQuestion { .. }) => Ok(back(
            &state,
            &form.session,
            &page,
            "No run of this account is waiting for a code now (it ended or gave up waiting). Run it now to get a new code.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /accounts/{id}/run`: queues a run now (a worker of this server or
/// of `gleaner daemon` takes it).
async fn run_now(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, WebError> {
    let account = account_or_404(&state, &id).await?;
    let page = format!("/accounts/{}", account.id);
    let active = active_jobs(&state, Some(&account.id)).await?;
    if let Some(j) = active.iter().find(|j| j.state != JobState::Queued) {
        let what = if j.state == JobState::AwaitingUser {
            "and it waits for your code"
        } else {
            "wait for it to end"
        };
        return Ok(back(
            &state,
            &form.session,
            &page,
            format!(
                "A run of this account is already going (run #{}); {what}.",
                j.id
            ),
        ));
    }
    state.scheduler.sync_triggers().await?;
    let job = state
        .scheduler
        .queue
        .enqueue_manual(&account.id, &account.konnector)
        .await?;
    Ok(back(
        &state,
        &form.session,
        &page,
        format!("Run #{job} started; this page follows it."),
    ))
}

/// `POST /accounts/{id}/pause` and `/resume`.
async fn set_paused(
    state: &WebState,
    id: &str,
    form: &CsrfForm,
    paused: bool,
) -> Result<Response, WebError> {
    let account = account_or_404(state, id).await?;
    state.scheduler.sync_triggers().await?;
    state
        .scheduler
        .queue
        .set_paused(&account.id, paused)
        .await?;
    let message = if paused {
        "Automatic runs paused; Run now still works."
    } else {
        "Automatic runs resumed."
    };
    Ok(back(
        state,
        &form.session,
        &format!("/accounts/{}", account.id),
        message,
    ))
}

/// `POST /accounts/{id}/pause`: no automatic run until resumed.
async fn pause(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, WebError> {
    set_paused(&state, &id, &form, true).await
}

/// `POST /accounts/{id}/resume`
async fn resume(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, WebError> {
    set_paused(&state, &id, &form, false).await
}

// ---- editing credentials ---------------------------------------------------

/// One input of the credentials form.
struct FieldView {
    name: String,
    label: String,
    secret: bool,
    required: bool,
    value: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "account_edit.html")]
struct EditPage {
    layout: Layout,
    id: String,
    label: String,
    provider: String,
    fields: Vec<FieldView>,
}

/// The credentials form: every field the person types (secret ones
/// empty), with `values` kept and `errors` beside their fields.
fn edit_page(
    state: &WebState,
    session: &Session,
    account: &Account,
    values: &BTreeMap<String, String>,
    errors: &[accounts::FieldError],
) -> Result<EditPage, WebError> {
    let manifest = state
        .app
        .registry
        .get(&account.konnector)?
        .konnector
        .manifest()
        .clone();
    let fields = manifest
        .fields
        .iter()
        .filter(|(_, spec)| spec.kind != gleaner_framework::manifest::FieldType::Hidden)
        .map(|(name, spec)| {
            let secret = spec.kind.is_secret();
            FieldView {
                name: name.clone(),
                label: spec.label.clone(),
                secret,
                required: spec.required && !secret,
                value: if secret {
                    String::new()
                } else {
                    values
                        .get(name)
                        .or_else(|| account.fields.get(name))
                        .cloned()
                        .unwrap_or_default()
                },
                error: errors
                    .iter()
                    .find(|e| &e.field == name)
                    .map(|e| e.message.clone()),
            }
        })
        .collect();
    Ok(EditPage {
        layout: Layout::new(
            state,
            session,
            format!("Credentials of {}", account.label),
            Nav::Accounts,
        ),
        id: account.id.clone(),
        label: account.label.clone(),
        provider: manifest.name.clone(),
        fields,
    })
}

/// `GET /accounts/{id}/edit`
async fn edit_form(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let account = account_or_404(&state, &id).await?;
    let page = edit_page(&state, &session, &account, &BTreeMap::new(), &[])?;
    Ok(render::page(&page))
}

/// `POST /accounts/{id}/edit`: changes what differs (an empty secret keeps
/// the current one); refusals come back beside their fields (422).
async fn edit(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, WebError> {
    let account = account_or_404(&state, &id).await?;
    let manifest = state
        .app
        .registry
        .get(&account.konnector)?
        .konnector
        .manifest()
        .clone();
    let mut sent = BTreeMap::new();
    let mut changes = BTreeMap::new();
    for (name, value) in form.fields() {
        let Some(spec) = manifest.fields.get(name) else {
            continue;
        };
        if spec.kind == gleaner_framework::manifest::FieldType::Hidden {
            continue;
        }
        let value = if spec.kind.is_secret() {
            value.to_owned()
        } else {
            value.trim().to_owned()
        };
        sent.insert(name.to_owned(), value.clone());
        let same = !spec.kind.is_secret() && account.fields.get(name) == Some(&value);
        let kept = spec.kind.is_secret() && value.is_empty();
        if !same && !kept {
            changes.insert(name.to_owned(), value);
        }
    }
    let page = format!("/accounts/{}", account.id);
    if changes.is_empty() {
        return Ok(back(&state, &form.session, &page, "Nothing changed."));
    }
    let updated = accounts::update(&state.app, &account, changes).await?;
    match updated {
        Ok(changed) => {
            let labels: Vec<String> = changed
                .iter()
                .map(|n| {
                    manifest
                        .fields
                        .get(n)
                        .map_or_else(|| n.clone(), |s| s.label.to_lowercase())
                })
                .collect();
            Ok(back(
                &state,
                &form.session,
                &page,
                format!(
                    "Saved: {}. Automatic runs go on; Run now checks it at once.",
                    labels.join(", ")
                ),
            ))
        }
        Err(refusals) => {
            let page = edit_page(&state, &form.session, &account, &sent, &refusals)?;
            Ok(render::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &page,
            ))
        }
    }
}

// ---- removing ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "account_remove.html")]
struct RemovePage {
    layout: Layout,
    id: String,
    label: String,
    provider: String,
    documents: u64,
    files: u64,
    folder: String,
    busy: Option<i64>,
}

/// How many documents the account has (every doctype).
async fn count_documents(state: &WebState, account_id: &str) -> Result<u64, WebError> {
    let mut n = 0u64;
    for doctype in state.app.store.count_by_doctype().await?.keys() {
        let mut after: Option<String> = None;
        loop {
            let page = state
                .app
                .store
                .list(doctype, Some(account_id), after.as_deref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            n += page.len() as u64;
        }
    }
    Ok(n)
}

/// How many files are under a folder (recursively).
fn count_files(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// The active (running or waiting) job of an account, if any.
async fn busy(state: &WebState, account_id: &str) -> Result<Option<i64>, WebError> {
    Ok(active_jobs(state, Some(account_id))
        .await?
        .into_iter()
        .find(|j| j.state != JobState::Queued)
        .map(|j| j.id))
}

/// `GET /accounts/{id}/remove`: the confirmation, with what a purge
/// deletes.
async fn remove_form(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let account = account_or_404(&state, &id).await?;
    let documents = count_documents(&state, &account.id).await?;
    let files = if account.folder.trim_matches('/').is_empty() {
        0
    } else {
        count_files(&state.app.files.absolute(&account.folder))
    };
    let page = RemovePage {
        layout: Layout::new(
            &state,
            &session,
            format!("Remove {}", account.label),
            Nav::Accounts,
        ),
        busy: busy(&state, &account.id).await?,
        provider: provider_name(&state, &account.konnector),
        id: account.id,
        label: account.label,
        folder: account.folder,
        documents,
        files,
    };
    Ok(render::page(&page))
}

/// `POST /accounts/{id}/remove` (checkbox `purge`): removes the account,
/// with its documents and files when `purge` is checked.
async fn remove(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, WebError> {
    let account = account_or_404(&state, &id).await?;
    if let Some(job) = busy(&state, &account.id).await? {
        return Ok(back(
            &state,
            &form.session,
            &format!("/accounts/{}/remove", account.id),
            format!("Run #{job} of this account is going: wait for it to end, then remove it."),
        ));
    }
    let purge = form.has("purge");
    accounts::remove(&state.app, &account, purge).await?;
    state.scheduler.sync_triggers().await?;
    let message = if purge {
        format!("Removed {} with its documents and files.", account.label)
    } else {
        format!(
            "Removed {}; its documents and files are kept.",
            account.label
        )
    };
    Ok(back(&state, &form.session, "/", message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(done: u64) -> Progress {
        Progress {
            done,
            total: Some(20),
            message: format!("bill {done}"),
        }
    }

    #[test]
    fn the_board_keeps_each_jobs_latest_progress_and_a_bounded_number_of_jobs() {
        let board = ProgressBoard::default();
        let hook = board.hook();
        hook(7, &progress(1));
        hook(7, &progress(2));
        assert_eq!(board.get(7), Some(progress(2)));
        board.forget(7);
        assert_eq!(board.get(7), None);
        for job in 0..(PROGRESS_ENTRIES as i64 + 10) {
            hook(job, &progress(1));
        }
        assert_eq!(board.lock().len(), PROGRESS_ENTRIES);
        assert_eq!(board.get(0), None, "the oldest went first");
        assert!(board.get(PROGRESS_ENTRIES as i64 + 9).is_some());
    }
}
