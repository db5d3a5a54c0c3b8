//! Claims on PostgreSQL: each konnector's limit counted across the fleet
//! under a transaction-scoped advisory lock per konnector (why an advisory
//! lock: see the module documentation of `postgres`), each job to one
//! worker (its row locked `FOR UPDATE SKIP LOCKED`, re-checked `queued` by
//! the update), and one active run per account (the unique partial index;
//! a claim that meets it skips the job).
//!
//! A claim is one transaction of **five round trips, whatever the batch
//! and however many konnectors it spans**: `BEGIN`; the konnectors already
//! at their limit (read without lock); the konnectors of the first
//! runnable jobs, each one's advisory lock taken by the same statement in
//! slug order; one statement that counts each locked konnector's active
//! jobs (a snapshot taken after the locks), locks the candidates `FOR
//! UPDATE SKIP LOCKED`, keeps as many per konnector as it has room for and
//! marks them `running` (`UPDATE ... RETURNING`); `COMMIT`.
//!
//! That statement skips the accounts it sees active (`NOT EXISTS`), so the
//! unique index `sched_jobs_one_active` only fires in a race: an account
//! made active by another transaction that commits while the statement
//! runs. The statement then fails as a whole (SQLSTATE `23505`); the claim
//! is rolled back and made again at once **job by job**, as before: the
//! candidates read `FOR UPDATE SKIP LOCKED`, then each `UPDATE` in a
//! savepoint, so that the job of an account made active meanwhile is
//! skipped and the claim goes on. That path costs three round trips more
//! per job, only after such a race.
//!
//! **Tenants**: a claim is never confined to a tenant by row-level
//! security, even in tenant mode: a konnector's limit protects its
//! provider from the whole fleet, so the running jobs it counts are every
//! tenant's (a scoped transaction would only see its own and let the
//! fleet exceed the limit). In tenant mode the claim runs in the
//! connecting user's transaction and filters `tenant_id` on the
//! **candidates** only: it takes that tenant's jobs, counted against
//! everyone's runs.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use sqlx::Connection as _;

use super::super::{Job, LimitFor};
use super::{PgQueue, TxError, is_unique_violation, sql, to_chrono};
use crate::error::Result;

/// The first key of the konnectors' advisory locks (`GLNR`); the second is
/// `hashtext(konnector)`. The two-key form lives apart from sqlx's
/// migration lock (one `bigint` key).
pub(super) const KONNECTOR_LOCK_CLASS: i32 = 0x474c_4e52;

/// How a claim marks its jobs `running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// All of them in one statement (which fails as a whole if an account
    /// became active meanwhile).
    OneStatement,
    /// One `UPDATE` per job, each in a savepoint (a job whose account
    /// became active meanwhile is skipped).
    JobByJob,
}

const WHAT: &str = "claiming jobs";

impl PgQueue {
    /// Claims up to `max` runnable jobs for `owner` in one transaction:
    /// any tenant's in fleet mode, only the queue's tenant's in tenant mode
    /// (each konnector's limit still counts every tenant's runs: see the
    /// module documentation).
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
        self.retrying(WHAT, || async move {
            match self
                .claim_once(owner, lease, limit_for, max, Mode::OneStatement)
                .await
            {
                // An account became active while the statement ran: the
                // transaction is rolled back (nothing was claimed), and the
                // claim is made again job by job, which skips that job.
                Err(TxError::Sql(_, e)) if is_unique_violation(&e) => {
                    tracing::debug!(
                        "claim: an account became active meanwhile; claiming job by job"
                    );
                    self.claim_once(owner, lease, limit_for, max, Mode::JobByJob)
                        .await
                }
                other => other,
            }
        })
        .await
    }

    async fn claim_once(
        &self,
        owner: &str,
        lease: StdDuration,
        limit_for: &LimitFor<'_>,
        max: usize,
        mode: Mode,
    ) -> std::result::Result<Vec<Job>, TxError> {
        let now = self.now();
        let lease_end = now + to_chrono(lease);
        // Unscoped even in tenant mode: the counts below are the fleet's.
        let mut tx = self.begin_fleet(WHAT).await?;
        let tenant = self.tenant_name();
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
        // The konnectors of the first runnable jobs (read without lock),
        // and each one's lock, taken by the same statement in slug order
        // (its target list is computed after the sort, one row at a
        // time): no two claimers wait for each other in a cycle. Once this
        // statement returns, every earlier holder of these locks has
        // committed, so the next statement's snapshot holds their claims.
        // While this transaction holds a konnector's lock, no other
        // claimer locks that konnector's rows: the rows locked below and
        // left unclaimed are not stolen from anyone.
        let slugs: Vec<(String,)> = sqlx::query_as(
            "SELECT k.konnector, pg_advisory_xact_lock($4, hashtext(k.konnector))
             FROM (SELECT DISTINCT konnector FROM (
                SELECT q.konnector FROM sched_jobs q
                WHERE q.state = 'queued' AND q.not_before <= $1
                  AND q.konnector <> ALL($2)
                  AND ($5::text IS NULL OR q.tenant_id = $5)
                  AND NOT EXISTS (SELECT 1 FROM sched_jobs r WHERE r.account_id = q.account_id
                                  AND r.state IN ('running', 'awaiting_user'))
                ORDER BY q.manual DESC, q.not_before, q.id LIMIT $3) s) k
             ORDER BY k.konnector COLLATE \"C\"",
        )
        .bind(now)
        .bind(&full)
        .bind(want)
        .bind(KONNECTOR_LOCK_CLASS)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(WHAT))?;
        if slugs.is_empty() {
            return Ok(Vec::new());
        }
        let slugs: Vec<String> = slugs.into_iter().map(|(k,)| k).collect();
        let claim = Claim {
            owner,
            tenant,
            now,
            lease_end,
            want,
            max,
        };
        let mut jobs = match mode {
            Mode::OneStatement => claim.in_one_statement(&mut tx, &slugs, limit_for).await?,
            Mode::JobByJob => claim.job_by_job(&mut tx, &slugs, limit_for).await?,
        };
        tx.commit().await.map_err(sql(WHAT))?;
        // The candidates' order: manual runs first, then the oldest.
        jobs.sort_by(|a, b| {
            b.manual
                .cmp(&a.manual)
                .then(a.not_before.cmp(&b.not_before))
                .then(a.id.cmp(&b.id))
        });
        Ok(jobs)
    }
}

/// One claim's parameters, once its konnectors are locked.
struct Claim<'a> {
    owner: &'a str,
    /// Only this tenant's candidates (tenant mode); `None`: every tenant's.
    tenant: Option<&'a str>,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    /// How many candidates are read.
    want: i64,
    /// How many jobs are claimed at most.
    max: usize,
}

impl Claim<'_> {
    /// Claims in one statement, under the locks of `slugs`: each
    /// konnector's room (its limit less its active jobs, counted in this
    /// statement's snapshot, taken after the locks), the candidates of the
    /// konnectors with room (`FOR UPDATE SKIP LOCKED`, accounts seen active
    /// skipped), as many of each konnector's first ones as it has room
    /// for, the first `max` of those, marked `running`. An account made
    /// active by a transaction that commits meanwhile makes it fail with a
    /// unique violation (the caller claims again job by job).
    async fn in_one_statement(
        &self,
        tx: &mut sqlx::PgConnection,
        slugs: &[String],
        limit_for: &LimitFor<'_>,
    ) -> std::result::Result<Vec<Job>, TxError> {
        let limits: Vec<i64> = slugs
            .iter()
            .map(|k| i64::try_from(limit_for(k)).unwrap_or(i64::MAX))
            .collect();
        let rows = sqlx::query(concat!(
            "WITH room AS (
                SELECT r.konnector,
                       r.lim - (SELECT COUNT(*) FROM sched_jobs a WHERE a.konnector = r.konnector
                                AND a.state IN ('running', 'awaiting_user')) AS free
                FROM unnest($2::text[], $3::bigint[]) AS r(konnector, lim)
             ),
             candidates AS MATERIALIZED (
                SELECT q.id, q.konnector, q.manual, q.not_before FROM sched_jobs q
                WHERE q.state = 'queued' AND q.not_before <= $1
                  AND q.konnector IN (SELECT konnector FROM room WHERE free > 0)
                  AND ($8::text IS NULL OR q.tenant_id = $8)
                  AND NOT EXISTS (SELECT 1 FROM sched_jobs r WHERE r.account_id = q.account_id
                                  AND r.state IN ('running', 'awaiting_user'))
                ORDER BY q.manual DESC, q.not_before, q.id
                LIMIT $4 FOR UPDATE OF q SKIP LOCKED
             ),
             picked AS (
                SELECT n.id AS pick FROM (
                    SELECT c.id, c.manual, c.not_before, room.free,
                           row_number() OVER (PARTITION BY c.konnector
                                              ORDER BY c.manual DESC, c.not_before, c.id) AS nth
                    FROM candidates c JOIN room ON room.konnector = c.konnector
                ) n
                WHERE n.nth <= n.free
                ORDER BY n.manual DESC, n.not_before, n.id
                LIMIT $5
             )
             UPDATE sched_jobs SET state = 'running', started_at = $1, lease_owner = $6,
                lease_expires_at = $7
             FROM picked WHERE sched_jobs.id = picked.pick AND sched_jobs.state = 'queued'
             RETURNING ",
            pg_job_columns!()
        ))
        .bind(self.now)
        .bind(slugs)
        .bind(&limits)
        .bind(self.want)
        .bind(i64::try_from(self.max).unwrap_or(i64::MAX))
        .bind(self.owner)
        .bind(self.lease_end)
        .bind(self.tenant)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(WHAT))?;
        rows.iter()
            .map(|row| Job::from_pg(row).map_err(TxError::from))
            .collect()
    }

    /// Claims job by job, under the locks of `slugs`: each konnector's
    /// room, the candidates (`FOR UPDATE SKIP LOCKED`), then each one's
    /// `UPDATE` in a savepoint, so that a job whose account became active
    /// meanwhile is skipped and the claim goes on.
    async fn job_by_job(
        &self,
        tx: &mut sqlx::PgConnection,
        slugs: &[String],
        limit_for: &LimitFor<'_>,
    ) -> std::result::Result<Vec<Job>, TxError> {
        let running: HashMap<String, i64> = sqlx::query_as(
            "SELECT konnector, COUNT(*) FROM sched_jobs
             WHERE konnector = ANY($1) AND state IN ('running', 'awaiting_user')
             GROUP BY konnector",
        )
        .bind(slugs)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(WHAT))?
        .into_iter()
        .collect();
        let mut room: HashMap<&str, usize> = HashMap::new();
        for slug in slugs {
            let running = running
                .get(slug)
                .map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX));
            let left = limit_for(slug).saturating_sub(running);
            if left > 0 {
                room.insert(slug.as_str(), left);
            }
        }
        let open: Vec<&str> = room.keys().copied().collect();
        // Rows locked by someone else (a manual run being queued) are
        // skipped, never waited for.
        let candidates: Vec<(i64, String)> = sqlx::query_as(
            "SELECT q.id, q.konnector FROM sched_jobs q
             WHERE q.state = 'queued' AND q.not_before <= $1
               AND q.konnector = ANY($2)
               AND ($4::text IS NULL OR q.tenant_id = $4)
               AND NOT EXISTS (SELECT 1 FROM sched_jobs r WHERE r.account_id = q.account_id
                               AND r.state IN ('running', 'awaiting_user'))
             ORDER BY q.manual DESC, q.not_before, q.id
             LIMIT $3 FOR UPDATE OF q SKIP LOCKED",
        )
        .bind(self.now)
        .bind(&open)
        .bind(self.want)
        .bind(self.tenant)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql(WHAT))?;
        let mut jobs = Vec::new();
        for (id, konnector) in candidates {
            if jobs.len() >= self.max {
                break;
            }
            let Some(left) = room.get_mut(konnector.as_str()).filter(|n| **n > 0) else {
                continue;
            };
            // In a savepoint: an account made active meanwhile (a manual
            // run started by another machine) refuses this update through
            // the unique index; the job is skipped, the claim goes on.
            let mut sp = tx.begin().await.map_err(sql(WHAT))?;
            let row = sqlx::query(concat!(
                "UPDATE sched_jobs SET state = 'running', started_at = $1, lease_owner = $2,
                    lease_expires_at = $3
                 WHERE id = $4 AND state = 'queued' RETURNING ",
                pg_job_columns!()
            ))
            .bind(self.now)
            .bind(self.owner)
            .bind(self.lease_end)
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
        Ok(jobs)
    }
}
