//! Leases: heartbeats, the requeuing of a stopping daemon's runs, and the
//! recovery of dead workers' jobs (done if their run committed, queued
//! again if not).

use gleaner_framework::ErrorCode;

use super::{Queue, Recovered, to_chrono, ts};
use crate::error::{Result, SchedulerError};

/// An active job's id, account, run id, lease owner and lease end.
type ActiveLease = (i64, String, String, Option<String>, Option<String>);

impl Queue {
    /// Renews a job's lease. `false` when the job is no longer this
    /// owner's (its lease ran out and another worker took it back): the
    /// worker must stop the run.
    pub async fn heartbeat(
        &self,
        id: i64,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<bool> {
        let now = self.now();
        let done = sqlx::query(
            "UPDATE sched_jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?
             AND state IN ('running', 'awaiting_user')",
        )
        .bind(ts(now + to_chrono(lease)))
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "renewing a lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// graceful shutdown whose grace period ran out).
    pub async fn requeue_owned(&self, owner: &str) -> Result<Vec<i64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE sched_jobs SET state = 'queued', started_at = NULL, lease_owner = NULL,
                lease_expires_at = NULL, twofa_kind = NULL, twofa_hint = NULL, twofa_deadline = NULL
             WHERE lease_owner = ? AND state IN ('running', 'awaiting_user') RETURNING id",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "requeuing jobs"))?;
        Ok(ids)
    }

    /// Takes back the jobs of dead workers (lease run out): done if their
    /// run committed, queued again otherwise.
    pub async fn recover(&self) -> Result<Recovered> {
        let now_s = ts(self.now());
        let mut tx = self.write_tx("recovering jobs").await?;
        let active: Vec<ActiveLease> = sqlx::query_as(
            "SELECT id, account_id, run_id, lease_owner, lease_expires_at FROM sched_jobs
             WHERE state IN ('running', 'awaiting_user')",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
        let stale = active
            .into_iter()
            .filter_map(|(id, account, run_id, owner, expires)| {
                let expired = expires.is_none_or(|e| e < now_s);
                let dead = owner.as_deref().is_some_and(crate::owner::is_dead);
                (expired || dead).then_some((id, account, run_id))
            });
        let mut out = Recovered::default();
        for (id, account, run_id) in stale {
            let committed: Option<String> = sqlx::query_scalar(
                "SELECT last_run_id FROM konnector_state WHERE account_id = ? AND last_run_id = ?",
            )
            .bind(&account)
            .bind(&run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
            if committed.is_some() {
                sqlx::query(
                    "UPDATE sched_jobs SET state = 'done', finished_at = ?, lease_owner = NULL,
                        lease_expires_at = NULL,
                        report = '{\"note\":\"committed before its worker stopped; counts not recorded\"}'
                     WHERE id = ?",
                )
                .bind(&now_s)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'done', last_execution = ?, last_success = ?,
                        last_error_code = NULL, last_error_message = NULL, blocked_code = NULL, updated_at = ?
                     WHERE account_id = ?",
                )
                .bind(&now_s)
                .bind(&now_s)
                .bind(&now_s)
                .bind(&account)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
                out.completed.push(id);
            } else {
                // A queued job of the same account (queued meanwhile) makes
                // this one redundant: it ends as errored, recorded.
                let requeued = sqlx::query(
                    "UPDATE OR IGNORE sched_jobs SET state = 'queued', started_at = NULL, lease_owner = NULL,
                        lease_expires_at = NULL, recoveries = recoveries + 1, twofa_kind = NULL,
                        twofa_hint = NULL, twofa_deadline = NULL
                     WHERE id = ?",
                )
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
                if requeued.rows_affected() == 1 {
                    out.requeued.push(id);
                } else {
                    sqlx::query(
                        "UPDATE sched_jobs SET state = 'errored', finished_at = ?, lease_owner = NULL,
                            lease_expires_at = NULL, error_code = ?,
                            error_message = 'its worker stopped; another queued run of this account replaces it'
                         WHERE id = ?",
                    )
                    .bind(&now_s)
                    .bind(ErrorCode::UnknownError.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
                }
            }
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
        if !out.completed.is_empty() || !out.requeued.is_empty() {
            tracing::warn!(completed = ?out.completed, requeued = ?out.requeued, "took back jobs of a stopped worker");
        }
        Ok(out)
    }
}
