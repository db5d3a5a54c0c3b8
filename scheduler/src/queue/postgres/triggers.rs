//! `sched_triggers` on PostgreSQL: each account's trigger, pauses and
//! blocks, and the planning that turns due triggers into jobs or skip
//! records, once across the fleet (due triggers are read `FOR UPDATE SKIP
//! LOCKED`).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use super::super::{JobCode, NextRun, TriggerKind, TriggerState};
use super::{PgQueue, TxError, notify, sql};
use crate::error::{Result, SchedulerError};

impl PgQueue {
    /// Every trigger (of the tenant, in tenant mode), by account id.
    pub(super) async fn triggers(&self) -> Result<Vec<TriggerState>> {
        const WHAT: &str = "listing triggers";
        let mut conn = self.conn(WHAT).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            pg_trigger_columns!(),
            " FROM sched_triggers WHERE ($1::text IS NULL OR tenant_id = $1) ORDER BY account_id"
        ))
        .bind(self.tenant_name())
        .fetch_all(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        rows.iter().map(TriggerState::from_pg).collect()
    }

    /// One account's trigger (`None` for another tenant's, in tenant
    /// mode).
    pub(super) async fn trigger(&self, account_id: &str) -> Result<Option<TriggerState>> {
        const WHAT: &str = "reading a trigger";
        let mut conn = self.conn(WHAT).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            pg_trigger_columns!(),
            " FROM sched_triggers WHERE account_id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
        ))
        .bind(account_id)
        .bind(self.tenant_name())
        .fetch_optional(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        row.as_ref().map(TriggerState::from_pg).transpose()
    }

    /// Accounts of the store (of the tenant, in tenant mode) without a
    /// trigger, in one indexed query. Reads the store's
    /// `accounts.tenant_id`.
    pub(super) async fn accounts_without_trigger(&self) -> Result<Vec<(String, String)>> {
        const WHAT: &str = "finding new accounts";
        let mut conn = self.conn(WHAT).await?;
        let rows = sqlx::query_as(
            "SELECT a.id, a.konnector FROM accounts a
             WHERE ($1::text IS NULL OR a.tenant_id = $1)
               AND NOT EXISTS (SELECT 1 FROM sched_triggers t WHERE t.account_id = a.id)
             ORDER BY a.id",
        )
        .bind(self.tenant_name())
        .fetch_all(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(rows)
    }

    /// Creates triggers; existing ones keep their state (`ON CONFLICT DO
    /// NOTHING`, so two machines adding one account leave one trigger).
    /// Each takes its tenant: the queue's in tenant mode; in fleet mode its
    /// account's (`accounts.tenant_id`), or the default tenant for an
    /// account the store does not hold.
    pub(super) async fn add_triggers(
        &self,
        rows: &[(String, String, DateTime<Utc>)],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let accounts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let konnectors: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        let firsts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.2).collect();
        const WHAT: &str = "adding triggers";
        let mut conn = self.conn(WHAT).await?;
        // One statement: unnest the three columns (one round trip for
        // 100,000 new accounts).
        sqlx::query(
            "INSERT INTO sched_triggers (account_id, konnector, next_run_at, updated_at, tenant_id)
             SELECT r.a, r.k, r.f, $4,
                    COALESCE($5::text,
                             (SELECT acc.tenant_id FROM accounts acc WHERE acc.id = r.a),
                             'default')
             FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS r(a, k, f)
             ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(&accounts)
        .bind(&konnectors)
        .bind(&firsts)
        .bind(now)
        .bind(self.tenant_name())
        .execute(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(())
    }

    /// Deletes the triggers and queued jobs of removed accounts (of the
    /// tenant, in tenant mode).
    pub(super) async fn drop_orphan_triggers(&self) -> Result<u64> {
        self.retrying("removing triggers", || async {
            let mut tx = self.begin("removing triggers").await?;
            sqlx::query(
                "DELETE FROM sched_jobs WHERE state = 'queued'
                 AND ($1::text IS NULL OR tenant_id = $1)
                 AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = sched_jobs.account_id)",
            )
            .bind(self.tenant_name())
            .execute(&mut *tx)
            .await
            .map_err(sql("removing queued jobs of removed accounts"))?;
            let gone = sqlx::query(
                "DELETE FROM sched_triggers
                 WHERE ($1::text IS NULL OR tenant_id = $1)
                   AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = sched_triggers.account_id)",
            )
            .bind(self.tenant_name())
            .execute(&mut *tx)
            .await
            .map_err(sql("removing triggers"))?
            .rows_affected();
            tx.commit().await.map_err(sql("removing triggers"))?;
            Ok(gone)
        })
        .await
    }

    /// Sets or clears an account's cron override, with its next run.
    pub(super) async fn set_cron(
        &self,
        account_id: &str,
        cron: Option<&str>,
        next_run_at: DateTime<Utc>,
    ) -> Result<()> {
        const WHAT: &str = "setting a cron override";
        let mut conn = self.conn(WHAT).await?;
        let done = sqlx::query(
            "UPDATE sched_triggers SET cron = $1, next_run_at = $2, updated_at = $3
             WHERE account_id = $4 AND ($5::text IS NULL OR tenant_id = $5)",
        )
        .bind(cron)
        .bind(next_run_at)
        .bind(self.now())
        .bind(account_id)
        .bind(self.tenant_name())
        .execute(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        if done.rows_affected() == 0 {
            return Err(SchedulerError::NotFound(format!(
                "account {account_id} has no trigger yet"
            )));
        }
        Ok(())
    }

    /// Pauses or resumes an account's automatic runs.
    pub(super) async fn set_paused(&self, account_id: &str, paused: bool) -> Result<()> {
        const WHAT: &str = "pausing a trigger";
        let mut conn = self.conn(WHAT).await?;
        let done = sqlx::query(
            "UPDATE sched_triggers SET paused = $1, updated_at = $2
             WHERE account_id = $3 AND ($4::text IS NULL OR tenant_id = $4)",
        )
        .bind(paused)
        .bind(self.now())
        .bind(account_id)
        .bind(self.tenant_name())
        .execute(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        if done.rows_affected() == 0 {
            return Err(SchedulerError::NotFound(format!(
                "account {account_id} has no trigger yet"
            )));
        }
        Ok(())
    }

    /// Lifts an account's block after its credentials changed.
    pub(super) async fn credentials_changed(&self, account_id: &str) -> Result<()> {
        const WHAT: &str = "lifting a block";
        let mut conn = self.conn(WHAT).await?;
        sqlx::query(
            "UPDATE sched_triggers SET blocked_code = NULL, updated_at = $1
             WHERE account_id = $2 AND ($3::text IS NULL OR tenant_id = $3)",
        )
        .bind(self.now())
        .bind(account_id)
        .bind(self.tenant_name())
        .execute(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(())
    }

    /// Plans due triggers (of the tenant, in tenant mode) into jobs or
    /// skips, as the SQLite queue does, once across the fleet. Each job
    /// takes its trigger's tenant.
    pub(super) async fn enqueue_due(
        &self,
        next: &NextRun<'_>,
        catch_up_after: Duration,
    ) -> Result<Vec<i64>> {
        self.retrying("enqueuing due runs", || {
            self.enqueue_due_once(next, catch_up_after)
        })
        .await
    }

    async fn enqueue_due_once(
        &self,
        next: &NextRun<'_>,
        catch_up_after: Duration,
    ) -> std::result::Result<Vec<i64>, TxError> {
        let now = self.now();
        let mut tx = self.begin("enqueuing due runs").await?;
        // Locked and skipped by other planners: each due trigger is planned
        // by one machine; once moved on, it no longer matches.
        let due = sqlx::query(concat!(
            "SELECT ",
            pg_trigger_columns!(),
            " FROM sched_triggers WHERE next_run_at <= $1 AND ($2::text IS NULL OR tenant_id = $2)
             ORDER BY next_run_at, account_id LIMIT 5000 FOR UPDATE SKIP LOCKED"
        ))
        .bind(now)
        .bind(self.tenant_name())
        .fetch_all(&mut *tx)
        .await
        .map_err(sql("finding due triggers"))?;
        let mut queued = Vec::new();
        let mut woken = BTreeSet::new();
        for row in &due {
            let t = TriggerState::from_pg(row)?;
            let kind = if now - t.next_run_at > catch_up_after {
                TriggerKind::CatchUp
            } else if t.cron.is_some() {
                TriggerKind::Cron
            } else {
                TriggerKind::Slot
            };
            let run_id = format!("job-{}", crate::new_run_suffix());
            if t.paused {
                tracing::debug!(account = %t.account_id, "paused: no automatic run");
            } else {
                let mut skip = match &t.blocked_code {
                    Some(code) => Some((
                        JobCode::SkippedNeedsUser,
                        format!(
                            "automatic run skipped: the last run failed with {code}; fix the account or run it by hand"
                        ),
                    )),
                    None => self.already_active(&mut tx, &t.account_id).await?,
                };
                if skip.is_none() {
                    // A job queued meanwhile by another transaction (a
                    // manual run) meets the unique index: not an error,
                    // the skip it would have been.
                    let id: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                            queued_at, not_before, tenant_id)
                         VALUES ($1, $2, $3, FALSE, 1, 'queued', $4, $5, $5, $6)
                         ON CONFLICT (account_id) WHERE state = 'queued' DO NOTHING RETURNING id",
                    )
                    .bind(&t.account_id)
                    .bind(&t.konnector)
                    .bind(kind.as_str())
                    .bind(&run_id)
                    .bind(now)
                    .bind(t.tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sql("queuing a job"))?;
                    match id {
                        Some(id) => {
                            queued.push(id);
                            woken.insert(t.konnector.clone());
                        }
                        None => skip = self.already_active(&mut tx, &t.account_id).await?,
                    }
                }
                if let Some((code, message)) = skip {
                    tracing::info!(account = %t.account_id, %code, "automatic run skipped");
                    sqlx::query(
                        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                            queued_at, not_before, finished_at, error_code, error_message, tenant_id)
                         VALUES ($1, $2, $3, FALSE, 1, 'skipped', $4, $5, $5, $5, $6, $7, $8)",
                    )
                    .bind(&t.account_id)
                    .bind(&t.konnector)
                    .bind(kind.as_str())
                    .bind(&run_id)
                    .bind(now)
                    .bind(code.as_str())
                    .bind(&message)
                    .bind(t.tenant.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(sql("recording a skip"))?;
                }
            }
            // From now, not from the missed time: one catch-up run.
            let next_at = next(&t, now).unwrap_or(now + Duration::days(1));
            sqlx::query(
                "UPDATE sched_triggers SET next_run_at = $1, updated_at = $2 WHERE account_id = $3",
            )
            .bind(next_at)
            .bind(now)
            .bind(&t.account_id)
            .execute(&mut *tx)
            .await
            .map_err(sql("moving a trigger"))?;
        }
        for konnector in &woken {
            notify(&mut tx, konnector).await?;
        }
        tx.commit().await.map_err(sql("enqueuing due runs"))?;
        Ok(queued)
    }

    /// The skip an automatic run of `account` gets when it has a queued or
    /// active job.
    async fn already_active(
        &self,
        tx: &mut sqlx::PgConnection,
        account: &str,
    ) -> std::result::Result<Option<(JobCode, String)>, TxError> {
        let active: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM sched_jobs WHERE account_id = $1
             AND state IN ('queued', 'running', 'awaiting_user') ORDER BY id LIMIT 1",
        )
        .bind(account)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql("checking active jobs"))?;
        Ok(active.map(|(id, state)| {
            (
                JobCode::SkippedAlreadyActive,
                format!("automatic run skipped: job #{id} of this account is {state}"),
            )
        }))
    }
}
