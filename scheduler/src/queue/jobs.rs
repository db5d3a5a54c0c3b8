//! `sched_jobs`: manual runs, claims (one run per account, per-konnector
//! limits), outcomes with their trigger's state and retry, history and
//! pruning.

use std::collections::HashMap;

use chrono::Duration;

use super::{Job, JobFilter, LimitFor, Outcome, Queue, to_chrono, ts};
use crate::error::{Result, SchedulerError};

impl Queue {
    /// Queues a manual run of an account (or turns its queued automatic
    /// run into a manual one). Returns the job id.
    pub async fn enqueue_manual(&self, account_id: &str, konnector: &str) -> Result<i64> {
        let mut tx = self.write_tx("queuing a manual run").await?;
        let id = self
            .enqueue_manual_in(&mut tx, account_id, konnector)
            .await?;
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?;
        Ok(id)
    }

    /// The account's queued job made manual and due now, or a new manual
    /// job, inside the caller's transaction.
    async fn enqueue_manual_in(
        &self,
        tx: &mut sqlx::SqliteConnection,
        account_id: &str,
        konnector: &str,
    ) -> Result<i64> {
        let now_s = ts(self.now());
        let queued: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sched_jobs WHERE account_id = ? AND state = 'queued'",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?;
        let id = match queued {
            Some(id) => {
                sqlx::query(
                    "UPDATE sched_jobs SET manual = 1, trigger = 'manual', not_before = ? WHERE id = ?",
                )
                .bind(&now_s)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?;
                id
            }
            None => sqlx::query_scalar(
                "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                    queued_at, not_before)
                 VALUES (?, ?, 'manual', 1, 1, 'queued', ?, ?, ?) RETURNING id",
            )
            .bind(account_id)
            .bind(konnector)
            .bind(format!("job-{}", crate::new_run_suffix()))
            .bind(&now_s)
            .bind(&now_s)
            .fetch_one(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?,
        };
        Ok(id)
    }

    /// Starts a manual run right away for `owner` (the `gleaner run`
    /// process): the account's queued job if it has one, else a new job.
    /// Fails with [`SchedulerError::Busy`] while another run holds the
    /// account, **and then changes nothing**: the check, the queuing and
    /// the claim are one `BEGIN IMMEDIATE` transaction, so a refused run
    /// never leaves a job behind for a daemon to run later.
    pub async fn start_manual(
        &self,
        account_id: &str,
        konnector: &str,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Job> {
        self.recover().await?;
        let sql = SchedulerError::sql_on(&self.pool, "starting a manual run");
        let mut tx = self.write_tx("starting a manual run").await?;
        let active: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM sched_jobs WHERE account_id = ? AND state IN ('running', 'awaiting_user') LIMIT 1",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(&sql)?;
        if let Some((job, state)) = active {
            // Dropping the transaction rolls it back: nothing was written.
            return Err(SchedulerError::Busy {
                account: account_id.to_owned(),
                job,
                state,
            });
        }
        let id = self
            .enqueue_manual_in(&mut tx, account_id, konnector)
            .await?;
        let now = self.now();
        let row = sqlx::query(concat!(
            "UPDATE sched_jobs SET state = 'running', started_at = ?, lease_owner = ?, lease_expires_at = ?
             WHERE id = ? AND state = 'queued' RETURNING ",
            job_columns!()
        ))
        .bind(ts(now))
        .bind(owner)
        .bind(ts(now + to_chrono(lease)))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(&sql)?;
        let job = Job::from_row(&row)?;
        tx.commit().await.map_err(&sql)?;
        Ok(job)
    }

    /// Claims the oldest runnable queued job for `owner`: due, its account
    /// not held by another run, and its konnector under its limit
    /// (`limit_for`). See [`Queue::claim_batch`].
    pub async fn claim(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit_for: &LimitFor<'_>,
    ) -> Result<Option<Job>> {
        Ok(self.claim_batch(owner, lease, limit_for, 1).await?.pop())
    }

    /// Claims up to `max` runnable queued jobs for `owner`, oldest first
    /// (manual ones before automatic ones), in one `BEGIN IMMEDIATE`
    /// transaction, so two daemons never take the same job nor exceed a
    /// per-konnector limit together, and a daemon with many free slots fills
    /// them in one write instead of one write per job.
    pub async fn claim_batch(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit_for: &LimitFor<'_>,
        max: usize,
    ) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let now_s = ts(now);
        let lease_s = ts(now + to_chrono(lease));
        let mut tx = self.write_tx("claiming jobs").await?;
        let active: Vec<(String, i64)> = sqlx::query_as(
            "SELECT konnector, COUNT(*) FROM sched_jobs WHERE state IN ('running', 'awaiting_user') GROUP BY konnector",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
        let mut active: HashMap<String, usize> = active
            .into_iter()
            .map(|(k, n)| (k, usize::try_from(n).unwrap_or(usize::MAX)))
            .collect();
        // One queued job per account (a unique index), so candidates are
        // distinct accounts.
        let candidates: Vec<(i64, String)> = sqlx::query_as(
            "SELECT q.id, q.konnector FROM sched_jobs q
             WHERE q.state = 'queued' AND q.not_before <= ?
               AND NOT EXISTS (SELECT 1 FROM sched_jobs r WHERE r.account_id = q.account_id
                               AND r.state IN ('running', 'awaiting_user'))
             ORDER BY q.manual DESC, q.not_before, q.id LIMIT ?",
        )
        .bind(&now_s)
        .bind(i64::try_from(max.saturating_mul(4).max(200)).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
        let mut jobs = Vec::new();
        for (id, konnector) in candidates {
            if jobs.len() >= max {
                break;
            }
            let running = active.entry(konnector.clone()).or_insert(0);
            if *running >= limit_for(&konnector) {
                continue;
            }
            *running += 1;
            let row = sqlx::query(concat!(
                "UPDATE sched_jobs SET state = 'running', started_at = ?, lease_owner = ?, lease_expires_at = ?
                 WHERE id = ? RETURNING ",
                job_columns!()
            ))
            .bind(&now_s)
            .bind(owner)
            .bind(&lease_s)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
            jobs.push(Job::from_row(&row)?);
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
        Ok(jobs)
    }

    /// Records how a job ended, updates its trigger's state, and queues the
    /// retry when there is one, in one transaction. Returns the retry's job
    /// id. Does nothing (and returns `Ok(None)`) if the job is no longer
    /// this owner's.
    pub async fn finish(&self, job: &Job, owner: &str, outcome: &Outcome) -> Result<Option<i64>> {
        let now = self.now();
        let now_s = ts(now);
        let mut tx = self.write_tx("finishing a job").await?;
        let (state, code, message, report) = match outcome {
            Outcome::Done(report) => ("done", None, None, Some(report.to_string())),
            Outcome::Failed { code, message, .. } => {
                ("errored", Some(code.as_str()), Some(message.as_str()), None)
            }
        };
        let updated = sqlx::query(
            "UPDATE sched_jobs SET state = ?, finished_at = ?, error_code = ?, error_message = ?,
                report = ?, lease_owner = NULL, lease_expires_at = NULL, twofa_kind = NULL,
                twofa_hint = NULL, twofa_deadline = NULL
             WHERE id = ? AND lease_owner = ? AND state IN ('running', 'awaiting_user')",
        )
        .bind(state)
        .bind(&now_s)
        .bind(code)
        .bind(message)
        .bind(report)
        .bind(job.id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "finishing a job"))?;
        if updated.rows_affected() == 0 {
            tracing::warn!(
                job = job.id,
                "job no longer held by this worker; outcome dropped"
            );
            return Ok(None);
        }
        sqlx::query("DELETE FROM sched_twofa_answers WHERE job_id = ?")
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "finishing a job"))?;
        let manual_col = if job.manual {
            Some(now_s.clone())
        } else {
            None
        };
        let mut retry_id = None;
        match outcome {
            Outcome::Done(_) => {
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'done', last_execution = ?, last_success = ?,
                        last_manual_execution = COALESCE(?, last_manual_execution),
                        last_error_code = NULL, last_error_message = NULL, blocked_code = NULL, updated_at = ?
                     WHERE account_id = ?",
                )
                .bind(&now_s)
                .bind(&now_s)
                .bind(&manual_col)
                .bind(&now_s)
                .bind(&job.account_id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "updating a trigger"))?;
            }
            Outcome::Failed {
                code,
                message,
                next,
            } => {
                let blocked = matches!(next, crate::retry::AfterFailure::BlockAccount)
                    .then_some(code.as_str());
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'errored', last_execution = ?, last_failure = ?,
                        last_manual_execution = COALESCE(?, last_manual_execution),
                        last_error_code = ?, last_error_message = ?,
                        blocked_code = COALESCE(?, blocked_code), updated_at = ?
                     WHERE account_id = ?",
                )
                .bind(&now_s)
                .bind(&now_s)
                .bind(&manual_col)
                .bind(code.as_str())
                .bind(message)
                .bind(blocked)
                .bind(&now_s)
                .bind(&job.account_id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "updating a trigger"))?;
                if let crate::retry::AfterFailure::Retry(delay) = next {
                    let id: Option<i64> = sqlx::query_scalar(
                        "INSERT OR IGNORE INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state,
                            run_id, queued_at, not_before)
                         VALUES (?, ?, 'retry', ?, ?, 'queued', ?, ?, ?) RETURNING id",
                    )
                    .bind(&job.account_id)
                    .bind(&job.konnector)
                    .bind(i64::from(job.manual))
                    .bind(i64::from(job.attempt + 1))
                    .bind(format!("job-{}", crate::new_run_suffix()))
                    .bind(&now_s)
                    .bind(ts(now + to_chrono(*delay)))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(SchedulerError::sql_on(&self.pool, "queuing a retry"))?;
                    retry_id = id;
                }
            }
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "finishing a job"))?;
        Ok(retry_id)
    }

    /// Deletes finished jobs older than `retention`. Returns how many.
    pub async fn prune(&self, retention: Duration) -> Result<u64> {
        let cutoff = ts(self.now() - retention);
        let done = sqlx::query(
            "DELETE FROM sched_jobs WHERE state IN ('done', 'errored', 'skipped') AND finished_at < ?",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "pruning history"))?;
        sqlx::query("DELETE FROM sched_workers WHERE last_beat < ?")
            .bind(ts(self.now() - retention))
            .execute(&self.pool)
            .await
            .map_err(SchedulerError::sql_on(
                &self.pool,
                "forgetting silent workers",
            ))?;
        Ok(done.rows_affected())
    }

    /// One job.
    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM sched_jobs WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "reading a job"))?;
        row.as_ref().map(Job::from_row).transpose()
    }

    /// Jobs, newest first.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut q = sqlx::QueryBuilder::new(concat!(
            "SELECT ",
            job_columns!(),
            " FROM sched_jobs WHERE 1 = 1"
        ));
        if let Some(a) = &filter.account_id {
            q.push(" AND account_id = ").push_bind(a.clone());
        }
        if filter.failed {
            q.push(" AND state = 'errored'");
        }
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut sep = q.separated(", ");
            for s in &filter.states {
                sep.push_bind(s.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(if filter.limit == 0 { 50 } else { filter.limit }));
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "listing jobs"))?;
        rows.iter().map(Job::from_row).collect()
    }

    /// How many jobs are in each state.
    pub async fn counts(&self) -> Result<HashMap<String, u64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM sched_jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "counting jobs"))?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}
