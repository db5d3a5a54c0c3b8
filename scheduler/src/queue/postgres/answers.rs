//! The second factor on PostgreSQL: a job that waits in `awaiting_user`,
//! and `sched_twofa_answers`, the sealed codes given with `gleaner 2fa`
//! until the waiting run takes them.

use chrono::{DateTime, Utc};

use super::PgQueue;
use crate::error::{Result, SchedulerError};

impl PgQueue {
    /// Marks an active job as waiting for a code until `deadline`.
    pub(super) async fn set_awaiting(
        &self,
        id: i64,
        kind: &str,
        hint: Option<&str>,
        deadline: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sched_jobs SET state = 'awaiting_user', twofa_kind = $1, twofa_hint = $2,
                twofa_deadline = $3
             WHERE id = $4 AND state IN ('running', 'awaiting_user')",
        )
        .bind(kind)
        .bind(hint)
        .bind(deadline)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::pg_on(
            &self.pool,
            "marking a job awaiting_user",
        ))?;
        Ok(())
    }

    /// Marks a job running again after its question.
    pub(super) async fn set_running(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sched_jobs SET state = 'running', twofa_kind = NULL, twofa_hint = NULL,
                twofa_deadline = NULL
             WHERE id = $1 AND state = 'awaiting_user'",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, "marking a job running"))?;
        Ok(())
    }

    /// Records a sealed code for the account's waiting job, in one
    /// statement (the job is found and the code stored together).
    pub(super) async fn give_answer(&self, account_id: &str, sealed: &[u8]) -> Result<i64> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO sched_twofa_answers (job_id, sealed, given_at)
             SELECT id, $2, $3 FROM sched_jobs WHERE account_id = $1 AND state = 'awaiting_user'
             ON CONFLICT (job_id) DO UPDATE SET sealed = EXCLUDED.sealed, given_at = EXCLUDED.given_at
             RETURNING job_id",
        )
        .bind(account_id)
        .bind(sealed)
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, "giving a code"))?;
        id.ok_or_else(|| SchedulerError::NoQuestion {
            account: account_id.to_owned(),
        })
    }

    /// Takes (and deletes) the sealed code given for a job.
    pub(super) async fn take_answer(&self, id: i64) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("DELETE FROM sched_twofa_answers WHERE job_id = $1 RETURNING sealed")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(SchedulerError::pg_on(&self.pool, "taking a code"))
    }
}
