//! Leases on PostgreSQL: heartbeats, the requeuing of a stopping daemon's
//! runs, and the recovery of dead workers' jobs (done if their run
//! committed, queued again if not), each stale job taken back by one
//! machine (re-read `FOR UPDATE SKIP LOCKED` and checked again).
//!
//! In tenant mode each of these touches only the tenant's jobs, in a
//! transaction confined to it: recovery there takes back the tenant's own
//! stale jobs (what `gleaner run --tenant` needs before it starts one);
//! the daemons' fleet-mode recovery takes back everyone's.

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use gleaner_framework::ErrorCode;
use sqlx::Connection as _;

use super::super::Recovered;
use super::{PgQueue, TxError, is_unique_violation, notify, sql, to_chrono};
use crate::error::{Result, SchedulerError};

/// An active job's id, account, konnector, run id, lease owner and lease
/// end.
type ActiveLease = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// Whether a lease is stale at `now`: run out (or none), or its worker's
/// process is known dead.
fn stale(owner: Option<&str>, expires: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires.is_none_or(|e| e < now) || owner.is_some_and(crate::owner::is_dead)
}

impl PgQueue {
    /// Renews a job's lease while `owner` holds it.
    pub(super) async fn heartbeat(&self, id: i64, owner: &str, lease: StdDuration) -> Result<bool> {
        const WHAT: &str = "renewing a lease";
        let mut conn = self.conn(WHAT).await?;
        let done = sqlx::query(
            "UPDATE sched_jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3
             AND state IN ('running', 'awaiting_user') AND ($4::text IS NULL OR tenant_id = $4)",
        )
        .bind(self.now() + to_chrono(lease))
        .bind(id)
        .bind(owner)
        .bind(self.tenant_name())
        .execute(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts `owner`'s active jobs (of the tenant, in tenant mode) back in
    /// the queue (a stopping daemon).
    pub(super) async fn requeue_owned(&self, owner: &str) -> Result<Vec<i64>> {
        self.retrying("requeuing jobs", || async {
            let mut tx = self.begin("requeuing jobs").await?;
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "UPDATE sched_jobs SET state = 'queued', started_at = NULL, lease_owner = NULL,
                    lease_expires_at = NULL, twofa_kind = NULL, twofa_hint = NULL, twofa_deadline = NULL
                 WHERE lease_owner = $1 AND state IN ('running', 'awaiting_user')
                   AND ($2::text IS NULL OR tenant_id = $2)
                 RETURNING id, konnector",
            )
            .bind(owner)
            .bind(self.tenant_name())
            .fetch_all(&mut *tx)
            .await
            .map_err(sql("requeuing jobs"))?;
            let konnectors: BTreeSet<&str> = rows.iter().map(|(_, k)| k.as_str()).collect();
            for k in konnectors {
                notify(&mut tx, k).await?;
            }
            tx.commit().await.map_err(sql("requeuing jobs"))?;
            Ok(rows.into_iter().map(|(id, _)| id).collect())
        })
        .await
    }

    /// Takes back the jobs of dead workers (of the tenant, in tenant
    /// mode): done if their run committed, queued again otherwise.
    pub(super) async fn recover(&self) -> Result<Recovered> {
        let out = self
            .retrying("recovering jobs", || self.recover_once())
            .await?;
        if !out.completed.is_empty() || !out.requeued.is_empty() {
            tracing::warn!(completed = ?out.completed, requeued = ?out.requeued, "took back jobs of a stopped worker");
        }
        Ok(out)
    }

    async fn recover_once(&self) -> std::result::Result<Recovered, TxError> {
        const WHAT: &str = "recovering jobs";
        let now = self.now();
        let mut tx = self.begin(WHAT).await?;
        let active: Vec<ActiveLease> = sqlx::query_as(
            "SELECT id, account_id, konnector, run_id, lease_owner, lease_expires_at FROM sched_jobs
             WHERE state IN ('running', 'awaiting_user') AND ($1::text IS NULL OR tenant_id = $1)
             ORDER BY id",
        )
        .bind(self.tenant_name())
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(WHAT))?;
        let mut out = Recovered::default();
        let mut woken = BTreeSet::new();
        for (id, account, konnector, run_id, owner, expires) in active {
            if !stale(owner.as_deref(), expires, now) {
                continue;
            }
            // Locked, and checked again: another machine may be taking it
            // back (skip it), or its worker renewed the lease meanwhile.
            let current: Option<(Option<String>, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT lease_owner, lease_expires_at FROM sched_jobs
                 WHERE id = $1 AND state IN ('running', 'awaiting_user') FOR UPDATE SKIP LOCKED",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql(WHAT))?;
            match current {
                Some((owner, expires)) if stale(owner.as_deref(), expires, now) => {}
                _ => continue,
            }
            let committed: Option<String> = sqlx::query_scalar(
                "SELECT last_run_id FROM konnector_state WHERE account_id = $1 AND last_run_id = $2",
            )
            .bind(&account)
            .bind(&run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql(WHAT))?;
            if committed.is_some() {
                sqlx::query(
                    "UPDATE sched_jobs SET state = 'done', finished_at = $1, lease_owner = NULL,
                        lease_expires_at = NULL,
                        report = '{\"note\":\"committed before its worker stopped; counts not recorded\"}'::jsonb
                     WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(sql(WHAT))?;
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'done', last_execution = $1, last_success = $1,
                        last_error_code = NULL, last_error_message = NULL, blocked_code = NULL,
                        updated_at = $1
                     WHERE account_id = $2",
                )
                .bind(now)
                .bind(&account)
                .execute(&mut *tx)
                .await
                .map_err(sql(WHAT))?;
                out.completed.push(id);
                woken.insert(konnector);
                continue;
            }
            // Queued again, unless the account has a queued job already
            // (the unique index refuses it, in a savepoint): then this one
            // ends errored, replaced.
            let mut sp = (*tx).begin().await.map_err(sql(WHAT))?;
            let requeued = sqlx::query(
                "UPDATE sched_jobs SET state = 'queued', started_at = NULL, lease_owner = NULL,
                    lease_expires_at = NULL, recoveries = recoveries + 1, twofa_kind = NULL,
                    twofa_hint = NULL, twofa_deadline = NULL
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *sp)
            .await;
            match requeued {
                Ok(_) => {
                    sp.commit().await.map_err(sql(WHAT))?;
                    out.requeued.push(id);
                }
                Err(e) if is_unique_violation(&e) => {
                    sp.rollback().await.map_err(sql(WHAT))?;
                    sqlx::query(
                        "UPDATE sched_jobs SET state = 'errored', finished_at = $1, lease_owner = NULL,
                            lease_expires_at = NULL, error_code = $2,
                            error_message = 'its worker stopped; another queued run of this account replaces it'
                         WHERE id = $3",
                    )
                    .bind(now)
                    .bind(ErrorCode::UnknownError.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql(WHAT))?;
                }
                Err(e) => return Err(TxError::Sql(WHAT, e)),
            }
            woken.insert(konnector);
        }
        for k in &woken {
            notify(&mut tx, k).await?;
        }
        tx.commit().await.map_err(sql(WHAT))?;
        Ok(out)
    }
}
