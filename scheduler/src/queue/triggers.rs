//! `sched_triggers`: each account's trigger (cron override, next run,
//! current state), pauses and blocks, and the planning that turns due
//! triggers into jobs, or into skip records.

use chrono::{DateTime, Duration, Utc};

use super::{JobCode, NextRun, Queue, TriggerKind, TriggerState, ts};
use crate::error::{Result, SchedulerError};

impl Queue {
    /// Every trigger, by account id.
    pub async fn triggers(&self) -> Result<Vec<TriggerState>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            trigger_columns!(),
            " FROM sched_triggers ORDER BY account_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "listing triggers"))?;
        rows.iter().map(TriggerState::from_row).collect()
    }

    /// One account's trigger.
    pub async fn trigger(&self, account_id: &str) -> Result<Option<TriggerState>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            trigger_columns!(),
            " FROM sched_triggers WHERE account_id = ?"
        ))
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "reading a trigger"))?;
        row.as_ref().map(TriggerState::from_row).transpose()
    }

    /// Accounts of the store (its `accounts` table, in the same file) that
    /// have no trigger yet, as `(account, konnector)`: one indexed query, so
    /// a daemon with 100,000 accounts does not list them all every sync.
    pub async fn accounts_without_trigger(&self) -> Result<Vec<(String, String)>> {
        sqlx::query_as(
            "SELECT a.id, a.konnector FROM accounts a
             WHERE NOT EXISTS (SELECT 1 FROM sched_triggers t WHERE t.account_id = a.id)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "finding new accounts"))
    }

    /// Creates triggers (`(account, konnector, first run)`); existing ones
    /// keep their state.
    pub async fn add_triggers(&self, rows: &[(String, String, DateTime<Utc>)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = ts(self.now());
        let mut tx = self.write_tx("adding triggers").await?;
        for (account, konnector, first) in rows {
            sqlx::query(
                "INSERT INTO sched_triggers (account_id, konnector, next_run_at, updated_at)
                 VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO NOTHING",
            )
            .bind(account)
            .bind(konnector)
            .bind(ts(*first))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "adding a trigger"))?;
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "adding triggers"))
    }

    /// Deletes the triggers, and queued jobs, of accounts that are no longer
    /// in the store. Returns how many triggers went.
    pub async fn drop_orphan_triggers(&self) -> Result<u64> {
        let mut tx = self.write_tx("removing triggers").await?;
        sqlx::query(
            "DELETE FROM sched_jobs WHERE state = 'queued'
             AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = sched_jobs.account_id)",
        )
        .execute(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(
            &self.pool,
            "removing queued jobs of removed accounts",
        ))?;
        let gone = sqlx::query(
            "DELETE FROM sched_triggers
             WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = sched_triggers.account_id)",
        )
        .execute(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "removing triggers"))?
        .rows_affected();
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "removing triggers"))?;
        Ok(gone)
    }

    /// Sets or clears an account's cron override, with its next run.
    pub async fn set_cron(
        &self,
        account_id: &str,
        cron: Option<&str>,
        next_run_at: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE sched_triggers SET cron = ?, next_run_at = ?, updated_at = ? WHERE account_id = ?",
        )
        .bind(cron)
        .bind(ts(next_run_at))
        .bind(ts(self.now()))
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "setting a cron override"))?;
        if done.rows_affected() == 0 {
            return Err(SchedulerError::NotFound(format!(
                "account {account_id} has no trigger yet"
            )));
        }
        Ok(())
    }

    /// Pauses (or resumes) an account's automatic runs. A paused account
    /// gets no automatic job, not even a skipped record; manual runs still
    /// work. Fails with [`SchedulerError::NotFound`] when the account has
    /// no trigger yet.
    pub async fn set_paused(&self, account_id: &str, paused: bool) -> Result<()> {
        let done = sqlx::query(
            "UPDATE sched_triggers SET paused = ?, updated_at = ? WHERE account_id = ?",
        )
        .bind(i64::from(paused))
        .bind(ts(self.now()))
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "pausing a trigger"))?;
        if done.rows_affected() == 0 {
            return Err(SchedulerError::NotFound(format!(
                "account {account_id} has no trigger yet"
            )));
        }
        Ok(())
    }

    /// Lifts an account's block after its credentials changed.
    pub async fn credentials_changed(&self, account_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE sched_triggers SET blocked_code = NULL, updated_at = ? WHERE account_id = ?",
        )
        .bind(ts(self.now()))
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "lifting a block"))?;
        Ok(())
    }

    /// Enqueues one job per due trigger, or records why it is skipped, and
    /// moves each trigger to its next run (`next` computes it, after now).
    /// A trigger missed for longer than `catch_up_after` (the daemon was
    /// down) runs **once**, marked `catch-up`. Returns the jobs queued.
    pub async fn enqueue_due(
        &self,
        next: &NextRun<'_>,
        catch_up_after: Duration,
    ) -> Result<Vec<i64>> {
        let now = self.now();
        let now_s = ts(now);
        let mut tx = self.write_tx("enqueuing due runs").await?;
        let due = sqlx::query(concat!(
            "SELECT ",
            trigger_columns!(),
            " FROM sched_triggers WHERE next_run_at <= ? ORDER BY next_run_at LIMIT 5000"
        ))
        .bind(&now_s)
        .fetch_all(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "finding due triggers"))?;
        let mut queued = Vec::new();
        for row in &due {
            let t = TriggerState::from_row(row)?;
            let kind = if now - t.next_run_at > catch_up_after {
                TriggerKind::CatchUp
            } else if t.cron.is_some() {
                TriggerKind::Cron
            } else {
                TriggerKind::Slot
            };
            let skip = if t.paused {
                // Paused by the person: no job and no skip record, only the
                // trigger moves on (resumed, it runs at its next time, not
                // at once for the nights it was paused).
                None
            } else if let Some(code) = &t.blocked_code {
                Some((
                    JobCode::SkippedNeedsUser,
                    // The next step is the blocking code's
                    // (`ErrorCode::next_step`), worded by the front end.
                    format!(
                        "automatic run skipped: the last run failed with {code}; fix the account or run it by hand"
                    ),
                ))
            } else {
                let active: Option<(i64, String)> = sqlx::query_as(
                    "SELECT id, state FROM sched_jobs WHERE account_id = ?
                     AND state IN ('queued', 'running', 'awaiting_user') LIMIT 1",
                )
                .bind(&t.account_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "checking active jobs"))?;
                active.map(|(id, state)| {
                    (
                        JobCode::SkippedAlreadyActive,
                        format!("automatic run skipped: job #{id} of this account is {state}"),
                    )
                })
            };
            let run_id = format!("job-{}", crate::new_run_suffix());
            match skip {
                _ if t.paused => {
                    tracing::debug!(account = %t.account_id, "paused: no automatic run");
                }
                Some((code, message)) => {
                    tracing::info!(account = %t.account_id, %code, "automatic run skipped");
                    sqlx::query(
                        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                            queued_at, not_before, finished_at, error_code, error_message)
                         VALUES (?, ?, ?, 0, 1, 'skipped', ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&t.account_id)
                    .bind(&t.konnector)
                    .bind(kind.as_str())
                    .bind(&run_id)
                    .bind(&now_s)
                    .bind(&now_s)
                    .bind(&now_s)
                    .bind(code.as_str())
                    .bind(&message)
                    .execute(&mut *tx)
                    .await
                    .map_err(SchedulerError::sql_on(&self.pool, "recording a skip"))?;
                }
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                            queued_at, not_before)
                         VALUES (?, ?, ?, 0, 1, 'queued', ?, ?, ?) RETURNING id",
                    )
                    .bind(&t.account_id)
                    .bind(&t.konnector)
                    .bind(kind.as_str())
                    .bind(&run_id)
                    .bind(&now_s)
                    .bind(&now_s)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(SchedulerError::sql_on(&self.pool, "queuing a job"))?;
                    queued.push(id);
                }
            }
            // Computed from now, not from the missed time: one catch-up
            // run, not one per missed night.
            let next_at = next(&t, now).unwrap_or(now + Duration::days(1));
            sqlx::query(
                "UPDATE sched_triggers SET next_run_at = ?, updated_at = ? WHERE account_id = ?",
            )
            .bind(ts(next_at))
            .bind(&now_s)
            .bind(&t.account_id)
            .execute(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "moving a trigger"))?;
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "enqueuing due runs"))?;
        Ok(queued)
    }
}
