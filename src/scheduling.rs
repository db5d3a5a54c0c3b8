//! The scheduling commands: `daemon`, `schedule`, `jobs`, `status`, `2fa`,
//! `trigger`, and the job that `run` records.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use gleaner_framework::store::Account;
use gleaner_framework::{ErrorCode, RunReport, UserAction};
use gleaner_scheduler::queue::JobFilter;
use gleaner_scheduler::retry::AfterFailure;
use gleaner_scheduler::twofa::seal_code;
use gleaner_scheduler::{Attended, JobCode, JobState, Outcome, Scheduler, TriggerState};

use crate::app::App;
use crate::terminal::{command_for, printable, progress_bar, table, with_next_step};

/// Runs one account now, as a recorded manual job of this process: leased,
/// retried by the daemon if the error is transient, visible in
/// `gleaner jobs`. In a terminal, second factors are prompted for; without
/// one, the job waits in `awaiting_user` for `gleaner 2fa`.
pub async fn run_job(
    app: &App,
    account: &Account,
    cassette: Option<gleaner_framework::CassetteMode>,
) -> Result<RunReport> {
    let sched = app.scheduler("cli").await?;
    sched.sync_triggers().await?;
    let job = sched
        .queue
        .start_manual(
            &account.id,
            &account.konnector,
            &sched.owner,
            sched.config.lease,
        )
        .await
        .map_err(|e| with_next_step(e.into(), &account.label))?;
    tracing::info!(job = job.id, "manual job started");
    let konnector_name = app
        .registry
        .get(&account.konnector)?
        .konnector
        .manifest()
        .name
        .clone();
    let (bar, progress) = progress_bar(&account.label);
    let attended = Attended {
        two_factor: crate::prompt::channel(&konnector_name, &bar),
        progress: Some(progress),
        cassette,
    };
    let outcome = tokio::select! {
        ex = sched.execute(job.clone(), Some(attended)) => Some(ex),
        _ = tokio::signal::ctrl_c() => None,
    };
    bar.finish_and_clear();
    let Some(executed) = outcome else {
        sched
            .queue
            .finish(
                &job,
                &sched.owner,
                &Outcome::Failed {
                    code: ErrorCode::UnknownError,
                    message: "cancelled with Ctrl-C; nothing was saved".into(),
                    next: AfterFailure::GiveUp,
                },
            )
            .await?;
        bail!("cancelled; nothing was saved (job #{})", job.id);
    };
    match executed.result {
        Ok(report) => Ok(report),
        Err(e) => {
            let what = match (executed.after, executed.retry) {
                (Some(AfterFailure::Retry(d)), Some(id)) => format!(
                    "job #{}; the daemon retries it as job #{id} in {} s",
                    job.id,
                    d.as_secs()
                ),
                (Some(AfterFailure::BlockAccount), _) => format!(
                    "job #{}; automatic runs of this account are skipped until you act on it or a manual run succeeds",
                    job.id
                ),
                _ => format!("job #{}", job.id),
            };
            Err(with_next_step(
                anyhow::Error::new(e).context(what),
                &account.label,
            ))
        }
    }
}

/// `gleaner run --detach`: queue a manual run for the daemon.
pub async fn enqueue(app: &App, account: &Account) -> Result<()> {
    let sched = app.planner().await?;
    sched.sync_triggers().await?;
    let id = sched
        .queue
        .enqueue_manual(&account.id, &account.konnector)
        .await?;
    println!(
        "queued job #{id} for {}; a running `gleaner daemon` takes it (see `gleaner jobs --account {}`)",
        account.label, account.label
    );
    Ok(())
}

/// `gleaner daemon`
pub async fn daemon(
    app: &App,
    concurrency: Option<usize>,
    per_konnector: Option<usize>,
    worker_id: Option<String>,
) -> Result<()> {
    let mut sched = app.daemon_scheduler().await?;
    if let Some(id) = &worker_id {
        check_worker_id(&sched, id).await?;
    }
    if let Some(s) = Arc::get_mut(&mut sched) {
        if let Some(id) = worker_id {
            s.owner = id;
        }
        if let Some(c) = concurrency {
            s.config.concurrency = c.max(1);
        }
        if let Some(p) = per_konnector {
            s.config.per_konnector = p.max(1);
        }
    }
    let shutdown = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    let summary = sched.run_daemon(shutdown).await?;
    if !summary.requeued.is_empty() {
        eprintln!(
            "stopped; {} running job(s) queued again for the next start",
            summary.requeued.len()
        );
    }
    Ok(())
}

/// Refuses a worker id that is not a plain name, or that a live worker
/// uses (its heartbeat is younger than a lease): two workers under one
/// name would take back each other's jobs at shutdown.
async fn check_worker_id(sched: &Scheduler, id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 100
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@:".contains(c))
    {
        bail!(
            "--worker-id `{id}` is refused: use 1 to 100 letters, digits and - _ . @ : (such as the host name)"
        );
    }
    let now = sched.queue.now();
    let lease = chrono::Duration::from_std(sched.config.lease).unwrap_or(chrono::Duration::MAX);
    if let Some(w) = sched
        .queue
        .workers()
        .await?
        .into_iter()
        .find(|w| w.worker_id == id && now - w.last_beat < lease)
    {
        bail!(
            "the worker id `{id}` is in use: a worker on {} beat {} s ago; give each daemon its own --worker-id (or wait {} s after stopping the other)",
            w.host,
            (now - w.last_beat).num_seconds(),
            sched.config.lease.as_secs()
        );
    }
    Ok(())
}

fn local(app: &App, t: Option<DateTime<Utc>>) -> String {
    t.map(|t| {
        t.with_timezone(&app.config.timezone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    })
    .unwrap_or_else(|| "-".into())
}

/// `gleaner schedule`
pub async fn schedule(app: &App) -> Result<()> {
    let sched = app.planner().await?;
    let labels = printable_labels(sched.labels().await?);
    let mut rows = sched.overview().await?;
    rows.sort_by_key(|(t, _)| t.next_run_at);
    let mut t = table(&["account", "konnector", "trigger", "next run", "note"]);
    for (tr, describe) in rows {
        let label = labels
            .get(&tr.account_id)
            .cloned()
            .unwrap_or(tr.account_id.clone());
        let note = match (&tr.blocked_code, tr.paused) {
            (_, true) => format!("paused (gleaner accounts resume {label})"),
            (Some(code), false) => format!("skipped until fixed ({code})"),
            (None, false) => String::new(),
        };
        t.add_row(vec![
            label,
            tr.konnector.clone(),
            describe,
            local(app, Some(tr.next_run_at)),
            note,
        ]);
    }
    println!("{t}");
    println!(
        "times are {}; set `timezone` in {}",
        app.config.timezone,
        app.data_dir.join("gleaner.toml").display()
    );
    Ok(())
}

/// `gleaner jobs`
pub async fn jobs(
    app: &App,
    account: Option<&str>,
    failed: bool,
    limit: u32,
    json: bool,
) -> Result<()> {
    let sched = app.planner().await?;
    let account_id = match account {
        Some(a) => Some(app.find_account(a).await?.id),
        None => None,
    };
    let labels = printable_labels(sched.labels().await?);
    let blocked: std::collections::HashMap<String, JobCode> = sched
        .queue
        .triggers()
        .await?
        .into_iter()
        .filter_map(|t| t.blocked_code.map(|c| (t.account_id, c)))
        .collect();
    let jobs = sched
        .queue
        .jobs(&JobFilter {
            account_id,
            failed,
            limit,
            ..JobFilter::default()
        })
        .await?;
    if json {
        for j in &jobs {
            println!("{}", serde_json::to_string(j)?);
        }
        return Ok(());
    }
    let mut t = table(&[
        "job", "account", "trigger", "try", "state", "queued", "took", "result",
    ]);
    for j in &jobs {
        let took = match (j.started_at, j.finished_at) {
            (Some(s), Some(f)) => format!("{:.1} s", (f - s).num_milliseconds() as f64 / 1000.0),
            _ => "-".into(),
        };
        let result = match j.state {
            JobState::Done => j
                .report
                .as_ref()
                .and_then(|r| r.get("counts"))
                .and_then(|c| c.as_object())
                .map(|c| {
                    let created: u64 = c
                        .values()
                        .filter_map(|v| v.get("created").and_then(|n| n.as_u64()))
                        .sum();
                    format!("{created} new document(s)")
                })
                .unwrap_or_else(|| "done".into()),
            JobState::AwaitingUser => format!(
                "waiting for a {} code: gleaner 2fa {} <code>",
                j.twofa_kind.clone().unwrap_or_default(),
                labels.get(&j.account_id).cloned().unwrap_or_default()
            ),
            _ => {
                let text = match (&j.error_code, &j.error_message) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    _ => String::new(),
                };
                let label = labels.get(&j.account_id).cloned().unwrap_or_default();
                match job_next_step(j, blocked.get(&j.account_id)) {
                    Some(action) => format!("{text}\nnext: {}", command_for(action, &label)),
                    None => text,
                }
            }
        };
        t.add_row(vec![
            format!("#{}", j.id),
            labels
                .get(&j.account_id)
                .cloned()
                .unwrap_or(j.account_id.clone()),
            j.trigger.as_str().to_owned(),
            j.attempt.to_string(),
            j.state.as_str().to_owned(),
            local(app, Some(j.queued_at)),
            took,
            result,
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `gleaner status`: one line per account, readable at a glance.
pub async fn status(app: &App) -> Result<()> {
    let sched = app.planner().await?;
    let labels = printable_labels(sched.labels().await?);
    let rows = sched.overview().await?;
    let active = sched
        .queue
        .jobs(&JobFilter {
            states: vec![JobState::Running, JobState::AwaitingUser, JobState::Queued],
            limit: 10_000,
            ..JobFilter::default()
        })
        .await?;
    let mut t = table(&[
        "account",
        "konnector",
        "status",
        "last success",
        "last error",
        "next run",
    ]);
    for (tr, _) in rows {
        let label = labels
            .get(&tr.account_id)
            .cloned()
            .unwrap_or(tr.account_id.clone());
        let job = active.iter().find(|j| j.account_id == tr.account_id);
        let status = match (job.map(|j| j.state), &tr.blocked_code) {
            (Some(JobState::AwaitingUser), _) => {
                format!("WAITING FOR YOU: gleaner 2fa {label} <code>")
            }
            (Some(JobState::Running), _) => "running".to_owned(),
            (_, Some(code)) => format!("NEEDS YOU ({code})"),
            (Some(JobState::Queued), _) => "queued".to_owned(),
            _ if tr.paused => "paused".to_owned(),
            _ => match tr.status.as_str() {
                "done" => "ok".to_owned(),
                "errored" => "failing".to_owned(),
                _ => "never run".to_owned(),
            },
        };
        let status = match (job.map(|j| j.state), trigger_next_step(&tr)) {
            (Some(JobState::AwaitingUser | JobState::Running), _) | (_, None) => status,
            (_, Some(action)) => format!("{status}\nnext: {}", command_for(action, &label)),
        };
        let last_error = match (&tr.last_error_code, &tr.last_failure) {
            (Some(code), Some(at)) => format!("{code} ({})", local(app, Some(*at))),
            _ => "-".into(),
        };
        t.add_row(vec![
            label,
            tr.konnector.clone(),
            status,
            local(app, tr.last_success),
            last_error,
            if tr.blocked_code.is_some() || tr.paused {
                "paused".into()
            } else {
                local(app, Some(tr.next_run_at))
            },
        ]);
    }
    println!("{t}");
    print_fleet(app, &sched).await?;
    Ok(())
}

/// The workers that beat within the retention of the worker table, and
/// the queue's depth per provider (under `gleaner status`).
async fn print_fleet(app: &App, sched: &Scheduler) -> Result<()> {
    let workers = sched.queue.workers().await?;
    let depth = sched.queue.depth_by_konnector().await?;
    let now = sched.queue.now();
    let lease = chrono::Duration::from_std(sched.config.lease).unwrap_or(chrono::Duration::MAX);
    if !workers.is_empty() {
        let mut t = table(&[
            "worker",
            "host",
            "since",
            "last heartbeat",
            "jobs in flight",
        ]);
        for w in &workers {
            let ago = (now - w.last_beat).num_seconds().max(0);
            let beat = if now - w.last_beat < lease {
                format!("{ago} s ago")
            } else {
                format!("{ago} s ago (stopped or dead)")
            };
            t.add_row(vec![
                w.worker_id.clone(),
                w.host.clone(),
                local(app, Some(w.started_at)),
                beat,
                w.leased.to_string(),
            ]);
        }
        println!("\nworkers ({}):\n{t}", app.store.describe());
    }
    if depth.values().any(|d| d.due + d.later + d.active > 0) {
        let mut t = table(&["konnector", "queued (due)", "queued (later)", "running"]);
        for (k, d) in &depth {
            t.add_row(vec![
                k.clone(),
                d.due.to_string(),
                d.later.to_string(),
                d.active.to_string(),
            ]);
        }
        println!("\nqueue:\n{t}");
    }
    Ok(())
}

/// `gleaner 2fa <account> <code>`
pub async fn two_factor(app: &App, account: &Account, code: Option<String>) -> Result<()> {
    let sched = app.scheduler("cli").await?;
    let code = match code {
        Some(c) => c,
        None if std::io::stdin().is_terminal() => rpassword::prompt_password("code: ")?,
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line
        }
    };
    if code.trim().is_empty() {
        bail!("the code is empty");
    }
    let sealed = seal_code(&*app.vault().await?, &account.id, &code)?;
    let job = gleaner_scheduler::twofa::give_code(&*sched.queue, &account.id, &sealed).await;
    let job = job.map_err(|e| with_next_step(e.into(), &account.label))?;
    println!("code given to job #{job} of {}", account.label);
    Ok(())
}

/// `gleaner trigger <account> --cron EXPR | --auto`
pub async fn trigger(app: &App, account: &Account, cron: Option<&str>) -> Result<()> {
    let sched = app.planner().await?;
    let next = sched.set_cron(account, cron).await?;
    println!(
        "{}: {}; next run {} ({})",
        account.label,
        match cron {
            Some(c) => format!("cron `{c}`"),
            None => "automatic slot".into(),
        },
        local(app, Some(next)),
        app.config.timezone
    );
    Ok(())
}

/// `gleaner accounts pause|resume <account>`
pub async fn set_paused(app: &App, account: &Account, paused: bool) -> Result<()> {
    let sched = app.planner().await?;
    sched.sync_triggers().await?;
    sched.queue.set_paused(&account.id, paused).await?;
    let label = printable(&account.label);
    if paused {
        println!(
            "paused {label}: no automatic run until `gleaner accounts resume {label}`; `gleaner run {label}` still works"
        );
    } else {
        let next = sched
            .queue
            .trigger(&account.id)
            .await?
            .map(|t| local(app, Some(t.next_run_at)))
            .unwrap_or_else(|| "-".into());
        println!("resumed {label}: next automatic run {next}");
    }
    Ok(())
}

/// The next step of a finished job: an error's from its code; a skip's
/// from the code that still blocks its account (none once lifted).
fn job_next_step(job: &gleaner_scheduler::Job, blocked: Option<&JobCode>) -> Option<UserAction> {
    match job.state {
        JobState::Errored => job
            .error_code
            .as_ref()
            .and_then(JobCode::error_code)
            .and_then(ErrorCode::next_step),
        JobState::Skipped if job.error_code == Some(JobCode::SkippedNeedsUser) => blocked
            .and_then(JobCode::error_code)
            .and_then(ErrorCode::next_step),
        JobState::Skipped => Some(UserAction::SeeJobs),
        _ => None,
    }
}

/// The next step an account's trigger calls for: its block's, else its
/// last error's while it is failing.
fn trigger_next_step(t: &TriggerState) -> Option<UserAction> {
    let code = match (&t.blocked_code, t.status.as_str()) {
        (Some(code), _) => code,
        (None, "errored") => t.last_error_code.as_ref()?,
        _ => return None,
    };
    code.error_code()?.next_step()
}

/// Account labels made safe for the terminal (labels stored before they
/// were validated may hold control characters).
fn printable_labels(
    labels: std::collections::HashMap<String, String>,
) -> std::collections::HashMap<String, String> {
    labels
        .into_iter()
        .map(|(id, label)| (id, printable(&label)))
        .collect()
}
