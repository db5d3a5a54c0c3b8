//! `sched_jobs` on PostgreSQL: manual runs (queued with one upsert on the
//! one-queued-per-account index), outcomes with their trigger's state and
//! retry, history and pruning. Claims are in `claims.rs`.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::Duration;

use super::super::{Job, JobFilter, Outcome};
use super::{PgQueue, TxError, is_unique_violation, notify, sql, to_chrono};
use crate::error::{Result, SchedulerError};

impl PgQueue {
    /// Queues a manual run (or makes the account's queued job manual and
    /// due now). Returns the job id.
    pub(super) async fn enqueue_manual(&self, account_id: &str, konnector: &str) -> Result<i64> {
        self.retrying("queuing a manual run", || async {
            let mut tx = self.begin("queuing a manual run").await?;
            let id = self
                .enqueue_manual_in(&mut tx, account_id, konnector)
                .await?;
            notify(&mut tx, konnector).await?;
            tx.commit().await.map_err(sql("queuing a manual run"))?;
            Ok(id)
        })
        .await
    }

    /// The account's queued job made manual and due now, or a new manual
    /// job: one statement, atomic against every other machine (the
    /// conflict target is the one-queued-per-account index). The new job
    /// takes the queue's tenant (tenant mode) or the account's trigger's
    /// (fleet mode; the default tenant for an account without one). In
    /// tenant mode an account that is not the tenant's, or a queued job of
    /// another tenant, is `NotFound` and nothing is written.
    async fn enqueue_manual_in(
        &self,
        tx: &mut sqlx::PgConnection,
        account_id: &str,
        konnector: &str,
    ) -> std::result::Result<i64, TxError> {
        sqlx::query_scalar(
            "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                queued_at, not_before, tenant_id)
             SELECT $1, $2, 'manual', TRUE, 1, 'queued', $3, $4, $4,
                    COALESCE($5::text,
                             (SELECT t.tenant_id FROM sched_triggers t WHERE t.account_id = $1),
                             'default')
             WHERE $5::text IS NULL
                OR EXISTS (SELECT 1 FROM accounts a WHERE a.id = $1 AND a.tenant_id = $5)
             ON CONFLICT (account_id) WHERE state = 'queued'
             DO UPDATE SET manual = TRUE, trigger = 'manual', not_before = EXCLUDED.not_before
             WHERE sched_jobs.tenant_id = EXCLUDED.tenant_id
             RETURNING id",
        )
        .bind(account_id)
        .bind(konnector)
        .bind(format!("job-{}", crate::new_run_suffix()))
        .bind(self.now())
        .bind(self.tenant_name())
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql("queuing a manual run"))?
        .ok_or_else(|| {
            TxError::Fail(SchedulerError::NotFound(format!(
                "account {account_id} is not one of this tenant's"
            )))
        })
    }

    /// Starts a manual run at once for `owner`, or refuses with
    /// [`SchedulerError::Busy`] writing nothing.
    pub(super) async fn start_manual(
        &self,
        account_id: &str,
        konnector: &str,
        owner: &str,
        lease: StdDuration,
    ) -> Result<Job> {
        self.recover().await?;
        self.retrying("starting a manual run", || {
            self.start_manual_once(account_id, konnector, owner, lease)
        })
        .await
    }

    async fn start_manual_once(
        &self,
        account_id: &str,
        konnector: &str,
        owner: &str,
        lease: StdDuration,
    ) -> std::result::Result<Job, TxError> {
        const WHAT: &str = "starting a manual run";
        let mut tx = self.begin(WHAT).await?;
        let active: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM sched_jobs WHERE account_id = $1
             AND state IN ('running', 'awaiting_user') LIMIT 1",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql(WHAT))?;
        if let Some((job, state)) = active {
            // Dropping the transaction rolls it back: nothing was written.
            return Err(TxError::Fail(SchedulerError::Busy {
                account: account_id.to_owned(),
                job,
                state,
            }));
        }
        let id = self
            .enqueue_manual_in(&mut tx, account_id, konnector)
            .await?;
        let now = self.now();
        // The upsert holds the row: no claimer takes it before this
        // commits. A claimer that took the account's job just before the
        // upsert made the account active: the unique index refuses this
        // update, and the next try answers Busy.
        let row = sqlx::query(concat!(
            "UPDATE sched_jobs SET state = 'running', started_at = $1, lease_owner = $2,
                lease_expires_at = $3
             WHERE id = $4 AND state = 'queued' RETURNING ",
            pg_job_columns!()
        ))
        .bind(now)
        .bind(owner)
        .bind(now + to_chrono(lease))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await;
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => return Err(TxError::Again(format!("job #{id} was taken meanwhile"))),
            Err(e) if is_unique_violation(&e) => {
                return Err(TxError::Again(format!(
                    "account {account_id} became active meanwhile"
                )));
            }
            Err(e) => return Err(TxError::Sql(WHAT, e)),
        };
        let job = Job::from_pg(&row)?;
        tx.commit().await.map_err(sql(WHAT))?;
        Ok(job)
    }

    /// Records how a job ended, its trigger's state and the retry (of the
    /// job's tenant), in one transaction, while `owner` holds the job.
    pub(super) async fn finish(
        &self,
        job: &Job,
        owner: &str,
        outcome: &Outcome,
    ) -> Result<Option<i64>> {
        self.retrying("finishing a job", || self.finish_once(job, owner, outcome))
            .await
    }

    async fn finish_once(
        &self,
        job: &Job,
        owner: &str,
        outcome: &Outcome,
    ) -> std::result::Result<Option<i64>, TxError> {
        let now = self.now();
        let mut tx = self.begin("finishing a job").await?;
        let (state, code, message, report) = match outcome {
            Outcome::Done(report) => ("done", None, None, Some(report)),
            Outcome::Failed { code, message, .. } => {
                ("errored", Some(code.as_str()), Some(message.as_str()), None)
            }
        };
        let updated = sqlx::query(
            "UPDATE sched_jobs SET state = $1, finished_at = $2, error_code = $3, error_message = $4,
                report = $5, lease_owner = NULL, lease_expires_at = NULL, twofa_kind = NULL,
                twofa_hint = NULL, twofa_deadline = NULL
             WHERE id = $6 AND lease_owner = $7 AND state IN ('running', 'awaiting_user')
               AND ($8::text IS NULL OR tenant_id = $8)",
        )
        .bind(state)
        .bind(now)
        .bind(code)
        .bind(message)
        .bind(report)
        .bind(job.id)
        .bind(owner)
        .bind(self.tenant_name())
        .execute(&mut *tx)
        .await
        .map_err(sql("finishing a job"))?;
        if updated.rows_affected() == 0 {
            tracing::warn!(
                job = job.id,
                "job no longer held by this worker; outcome dropped"
            );
            return Ok(None);
        }
        sqlx::query("DELETE FROM sched_twofa_answers WHERE job_id = $1")
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .map_err(sql("finishing a job"))?;
        let manual_at = job.manual.then_some(now);
        let mut retry_id = None;
        match outcome {
            Outcome::Done(_) => {
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'done', last_execution = $1, last_success = $1,
                        last_manual_execution = COALESCE($2, last_manual_execution),
                        last_error_code = NULL, last_error_message = NULL, blocked_code = NULL,
                        updated_at = $1
                     WHERE account_id = $3 AND tenant_id = $4",
                )
                .bind(now)
                .bind(manual_at)
                .bind(&job.account_id)
                .bind(job.tenant.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sql("updating a trigger"))?;
            }
            Outcome::Failed {
                code,
                message,
                next,
            } => {
                let blocked = matches!(next, crate::retry::AfterFailure::BlockAccount)
                    .then_some(code.as_str());
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'errored', last_execution = $1, last_failure = $1,
                        last_manual_execution = COALESCE($2, last_manual_execution),
                        last_error_code = $3, last_error_message = $4,
                        blocked_code = COALESCE($5, blocked_code), updated_at = $1
                     WHERE account_id = $6 AND tenant_id = $7",
                )
                .bind(now)
                .bind(manual_at)
                .bind(code.as_str())
                .bind(message)
                .bind(blocked)
                .bind(&job.account_id)
                .bind(job.tenant.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sql("updating a trigger"))?;
                if let crate::retry::AfterFailure::Retry(delay) = next {
                    retry_id = sqlx::query_scalar(
                        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state,
                            run_id, queued_at, not_before, tenant_id)
                         VALUES ($1, $2, 'retry', $3, $4, 'queued', $5, $6, $7, $8)
                         ON CONFLICT (account_id) WHERE state = 'queued' DO NOTHING RETURNING id",
                    )
                    .bind(&job.account_id)
                    .bind(&job.konnector)
                    .bind(job.manual)
                    .bind(i32::try_from(job.attempt.saturating_add(1)).unwrap_or(i32::MAX))
                    .bind(format!("job-{}", crate::new_run_suffix()))
                    .bind(now)
                    .bind(now + to_chrono(*delay))
                    .bind(job.tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sql("queuing a retry"))?;
                }
            }
        }
        // A slot of this konnector is free (and maybe a retry queued).
        notify(&mut tx, &job.konnector).await?;
        tx.commit().await.map_err(sql("finishing a job"))?;
        Ok(retry_id)
    }

    /// Deletes finished jobs older than `retention` (of the tenant, in
    /// tenant mode), and, in fleet mode, forgets workers silent for as
    /// long (the fleet's list is no tenant's). Returns how many jobs.
    pub(super) async fn prune(&self, retention: Duration) -> Result<u64> {
        const WHAT: &str = "pruning history";
        let cutoff = self.now() - retention;
        let mut conn = self.conn(WHAT).await?;
        let done = sqlx::query(
            "DELETE FROM sched_jobs WHERE state IN ('done', 'errored', 'skipped') AND finished_at < $1
             AND ($2::text IS NULL OR tenant_id = $2)",
        )
        .bind(cutoff)
        .bind(self.tenant_name())
        .execute(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        if self.tenant.is_some() {
            return Ok(done.rows_affected());
        }
        sqlx::query("DELETE FROM sched_workers WHERE last_beat < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .map_err(SchedulerError::pg_on(
                &self.pool,
                "forgetting silent workers",
            ))?;
        Ok(done.rows_affected())
    }

    /// One job (`None` for another tenant's, in tenant mode).
    pub(super) async fn job(&self, id: i64) -> Result<Option<Job>> {
        const WHAT: &str = "reading a job";
        let mut conn = self.conn(WHAT).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            pg_job_columns!(),
            " FROM sched_jobs WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
        ))
        .bind(id)
        .bind(self.tenant_name())
        .fetch_optional(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        row.as_ref().map(Job::from_pg).transpose()
    }

    /// Jobs (of the tenant, in tenant mode), newest first.
    pub(super) async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        const WHAT: &str = "listing jobs";
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(concat!(
            "SELECT ",
            pg_job_columns!(),
            " FROM sched_jobs WHERE 1 = 1"
        ));
        if let Some(t) = self.tenant_name() {
            q.push(" AND tenant_id = ").push_bind(t.to_owned());
        }
        if let Some(a) = &filter.account_id {
            q.push(" AND account_id = ").push_bind(a.clone());
        }
        if filter.failed {
            q.push(" AND state = 'errored'");
        }
        if !filter.states.is_empty() {
            let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
            q.push(" AND state = ANY(").push_bind(states).push(")");
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(if filter.limit == 0 { 50 } else { filter.limit }));
        let mut conn = self.conn(WHAT).await?;
        let rows = q
            .build()
            .fetch_all(&mut *conn)
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        rows.iter().map(Job::from_pg).collect()
    }

    /// How many jobs (of the tenant, in tenant mode) are in each state.
    pub(super) async fn counts(&self) -> Result<HashMap<String, u64>> {
        const WHAT: &str = "counting jobs";
        let mut conn = self.conn(WHAT).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM sched_jobs
             WHERE ($1::text IS NULL OR tenant_id = $1) GROUP BY state",
        )
        .bind(self.tenant_name())
        .fetch_all(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}
