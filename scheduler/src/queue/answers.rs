//! The second factor: a job that waits in `awaiting_user`, and
//! `sched_twofa_answers`, the sealed codes given with `gleaner 2fa` until
//! the waiting run takes them.

use chrono::{DateTime, Utc};

use super::{Queue, ts};
use crate::error::{Result, SchedulerError};

impl Queue {
    /// Marks a job as waiting for a code until `deadline`.
    pub async fn set_awaiting(
        &self,
        id: i64,
        kind: &str,
        hint: Option<&str>,
        deadline: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sched_jobs SET state = 'awaiting_user', twofa_kind = ?, twofa_hint = ?, twofa_deadline = ?
             WHERE id = ? AND state IN ('running', 'awaiting_user')",
        )
        .bind(kind)
        .bind(hint)
        .bind(ts(deadline))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "marking a job awaiting_user"))?;
        Ok(())
    }

    /// Marks a job as running again after its question was answered or
    /// timed out.
    pub async fn set_running(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sched_jobs SET state = 'running', twofa_kind = NULL, twofa_hint = NULL, twofa_deadline = NULL
             WHERE id = ? AND state = 'awaiting_user'",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "marking a job running"))?;
        Ok(())
    }

    /// Records a sealed code for the account's job that waits for one.
    /// Returns that job's id.
    pub async fn give_answer(&self, account_id: &str, sealed: &[u8]) -> Result<i64> {
        let job: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sched_jobs WHERE account_id = ? AND state = 'awaiting_user'",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "giving a code"))?;
        let Some(id) = job else {
            return Err(SchedulerError::NoQuestion {
                account: account_id.to_owned(),
            });
        };
        sqlx::query(
            "INSERT INTO sched_twofa_answers (job_id, sealed, given_at) VALUES (?, ?, ?)
             ON CONFLICT (job_id) DO UPDATE SET sealed = excluded.sealed, given_at = excluded.given_at",
        )
        .bind(id)
        .bind(sealed)
        .bind(ts(self.now()))
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "giving a code"))?;
        Ok(id)
    }

    /// Takes (and deletes) the sealed code given for a job, if any.
    pub async fn take_answer(&self, id: i64) -> Result<Option<Vec<u8>>> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("DELETE FROM sched_twofa_answers WHERE job_id = ? RETURNING sealed")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "taking a code"))?;
        Ok(sealed)
    }
}
