//! Claims on PostgreSQL: each konnector's limit counted across the fleet
//! under a transaction-scoped advisory lock per konnector (why an advisory
//! lock: see the module documentation of `postgres`), each job to one
//! worker (its row locked `FOR UPDATE SKIP LOCKED`, re-checked `queued` by
//! the update), and one active run per account (the unique partial index;
//! a claim that meets it skips the job).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration as StdDuration;

use sqlx::Connection as _;

use super::super::{Job, LimitFor};
use super::{PgQueue, TxError, is_unique_violation, sql, to_chrono};
use crate::error::Result;

/// The first key of the konnectors' advisory locks (`GLNR`); the second is
/// `hashtext(konnector)`. The two-key form lives apart from sqlx's
/// migration lock (one `bigint` key).
pub(super) const KONNECTOR_LOCK_CLASS: i32 = 0x474c_4e52;

impl PgQueue {
    /// Claims up to `max` runnable jobs for `owner` in one transaction.
    pub(super) async fn claim_batch(
        &self,
        owner: &str,
        lease: StdDuration,
        limit_for: &LimitFor<'_>,
        max: usize,
    ) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.retrying("claiming jobs", || {
            self.claim_once(owner, lease, limit_for, max)
        })
        .await
    }

    async fn claim_once(
        &self,
        owner: &str,
        lease: StdDuration,
        limit_for: &LimitFor<'_>,
        max: usize,
    ) -> std::result::Result<Vec<Job>, TxError> {
        const WHAT: &str = "claiming jobs";
        let now = self.now();
        let lease_end = now + to_chrono(lease);
        let mut tx = self.begin(WHAT).await?;
        // Konnectors already at their limit (read without lock: only to
        // lock no konnector in vain; the count that decides is taken again
        // under the konnector's lock).
        let active: Vec<(String, i64)> = sqlx::query_as(
            "SELECT konnector, COUNT(*) FROM sched_jobs
             WHERE state IN ('running', 'awaiting_user') GROUP BY konnector",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(WHAT))?;
        let full: Vec<String> = active
            .into_iter()
            .filter(|(k, n)| usize::try_from(*n).unwrap_or(usize::MAX) >= limit_for(k))
            .map(|(k, _)| k)
            .collect();
        // As many candidates as the SQLite queue looks at.
        let want = i64::try_from(max.saturating_mul(4).max(200)).unwrap_or(i64::MAX);
        // The konnectors of the first runnable jobs (read without lock).
        let slugs: BTreeSet<String> = sqlx::query_scalar(
            "SELECT DISTINCT konnector FROM (
                SELECT q.konnector FROM sched_jobs q
                WHERE q.state = 'queued' AND q.not_before <= $1
                  AND q.konnector <> ALL($2)
                  AND NOT EXISTS (SELECT 1 FROM sched_jobs r WHERE r.account_id = q.account_id
                                  AND r.state IN ('running', 'awaiting_user'))
                ORDER BY q.manual DESC, q.not_before, q.id LIMIT $3) s",
        )
        .bind(now)
        .bind(&full)
        .bind(want)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(WHAT))?
        .into_iter()
        .collect();
        if slugs.is_empty() {
            return Ok(Vec::new());
        }
        // Each konnector's lock, in slug order (no two claimers wait for
        // each other in a cycle), then its count, which every earlier
        // holder's commit is in. While this transaction holds a
        // konnector's lock, no other claimer locks that konnector's rows:
        // the rows locked below and left unclaimed are not stolen from
        // anyone.
        let mut room: HashMap<String, usize> = HashMap::new();
        for slug in &slugs {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(KONNECTOR_LOCK_CLASS)
                .bind(slug)
                .execute(&mut *tx)
                .await
                .map_err(sql(WHAT))?;
            let running: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sched_jobs
                 WHERE konnector = $1 AND state IN ('running', 'awaiting_user')",
            )
            .bind(slug)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql(WHAT))?;
            let running = usize::try_from(running).unwrap_or(usize::MAX);
            let left = limit_for(slug).saturating_sub(running);
            if left > 0 {
                room.insert(slug.clone(), left);
            }
        }
        let open: Vec<&str> = room.keys().map(String::as_str).collect();
        // Rows locked by someone else (a manual run being queued) are
        // skipped, never waited for.
        let candidates: Vec<(i64, String)> = sqlx::query_as(
            "SELECT q.id, q.konnector FROM sched_jobs q
             WHERE q.state = 'queued' AND q.not_before <= $1
               AND q.konnector = ANY($2)
               AND NOT EXISTS (SELECT 1 FROM sched_jobs r WHERE r.account_id = q.account_id
                               AND r.state IN ('running', 'awaiting_user'))
             ORDER BY q.manual DESC, q.not_before, q.id
             LIMIT $3 FOR UPDATE OF q SKIP LOCKED",
        )
        .bind(now)
        .bind(&open)
        .bind(want)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(WHAT))?;
        let mut jobs = Vec::new();
        for (id, konnector) in candidates {
            if jobs.len() >= max {
                break;
            }
            let Some(left) = room.get_mut(&konnector).filter(|n| **n > 0) else {
                continue;
            };
            // In a savepoint: an account made active meanwhile (a manual
            // run started by another machine) refuses this update through
            // the unique index; the job is skipped, the claim goes on.
            let mut sp = (*tx).begin().await.map_err(sql(WHAT))?;
            let row = sqlx::query(concat!(
                "UPDATE sched_jobs SET state = 'running', started_at = $1, lease_owner = $2,
                    lease_expires_at = $3
                 WHERE id = $4 AND state = 'queued' RETURNING ",
                job_columns!()
            ))
            .bind(now)
            .bind(owner)
            .bind(lease_end)
            .bind(id)
            .fetch_optional(&mut *sp)
            .await;
            match row {
                Ok(Some(row)) => {
                    sp.commit().await.map_err(sql(WHAT))?;
                    *left -= 1;
                    jobs.push(Job::from_pg(&row)?);
                }
                Ok(None) => {
                    sp.commit().await.map_err(sql(WHAT))?;
                }
                Err(e) if is_unique_violation(&e) => {
                    sp.rollback().await.map_err(sql(WHAT))?;
                    tracing::debug!(job = id, "its account became active meanwhile: skipped");
                }
                Err(e) => return Err(TxError::Sql(WHAT, e)),
            }
        }
        tx.commit().await.map_err(sql(WHAT))?;
        Ok(jobs)
    }
}
