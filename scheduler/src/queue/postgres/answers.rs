//! The second factor on PostgreSQL: a job that waits in `awaiting_user`,
//! and `sched_twofa_answers`, the sealed codes given with `gleaner 2fa`
//! until the waiting run takes them. An answer takes its job's tenant; in
//! tenant mode only the tenant's jobs and answers are seen.

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
        const WHAT: &str = "marking a job awaiting_user";
        let mut conn = self.conn(WHAT).await?;
        sqlx::query(
            "UPDATE sched_jobs SET state = 'awaiting_user', twofa_kind = $1, twofa_hint = $2,
                twofa_deadline = $3
             WHERE id = $4 AND state IN ('running', 'awaiting_user')
               AND ($5::text IS NULL OR tenant_id = $5)",
        )
        .bind(kind)
        .bind(hint)
        .bind(deadline)
        .bind(id)
        .bind(self.tenant_name())
        .execute(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(())
    }

    /// Marks a job running again after its question.
    pub(super) async fn set_running(&self, id: i64) -> Result<()> {
        const WHAT: &str = "marking a job running";
        let mut conn = self.conn(WHAT).await?;
        sqlx::query(
            "UPDATE sched_jobs SET state = 'running', twofa_kind = NULL, twofa_hint = NULL,
                twofa_deadline = NULL
             WHERE id = $1 AND state = 'awaiting_user' AND ($2::text IS NULL OR tenant_id = $2)",
        )
        .bind(id)
        .bind(self.tenant_name())
        .execute(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(())
    }

    /// Records a sealed code for the account's waiting job (of the tenant,
    /// in tenant mode), in one statement (the job is found and the code
    /// stored together, with the job's tenant).
    pub(super) async fn give_answer(&self, account_id: &str, sealed: &[u8]) -> Result<i64> {
        const WHAT: &str = "giving a code";
        let mut conn = self.conn(WHAT).await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO sched_twofa_answers (job_id, sealed, given_at, tenant_id)
             SELECT id, $2, $3, tenant_id FROM sched_jobs
             WHERE account_id = $1 AND state = 'awaiting_user' AND ($4::text IS NULL OR tenant_id = $4)
             ON CONFLICT (job_id) DO UPDATE SET sealed = EXCLUDED.sealed, given_at = EXCLUDED.given_at
             RETURNING job_id",
        )
        .bind(account_id)
        .bind(sealed)
        .bind(self.now())
        .bind(self.tenant_name())
        .fetch_optional(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        id.ok_or_else(|| SchedulerError::NoQuestion {
            account: account_id.to_owned(),
        })
    }

    /// Takes (and deletes) the sealed code given for a job.
    pub(super) async fn take_answer(&self, id: i64) -> Result<Option<Vec<u8>>> {
        const WHAT: &str = "taking a code";
        let mut conn = self.conn(WHAT).await?;
        let sealed = sqlx::query_scalar(
            "DELETE FROM sched_twofa_answers WHERE job_id = $1
             AND ($2::text IS NULL OR tenant_id = $2) RETURNING sealed",
        )
        .bind(id)
        .bind(self.tenant_name())
        .fetch_optional(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(sealed)
    }
}
