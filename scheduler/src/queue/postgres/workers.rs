//! `sched_workers` on PostgreSQL: the fleet's heartbeats and clean stops,
//! the jobs leased to each worker, the queue's depth per konnector, and
//! the wake-ups (`LISTEN gleaner_jobs`).

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgListener, PgPoolOptions};

use super::super::{QueueDepth, WorkerState};
use super::{PgQueue, WAKE_CHANNEL};
use crate::error::{Result, SchedulerError};

/// A worker row with its leased jobs.
type WorkerRow = (String, String, DateTime<Utc>, DateTime<Utc>, i32, i64);

/// A konnector's queued-due, queued-later and active counts.
type DepthRow = (String, i64, i64, i64);

impl PgQueue {
    /// Records a heartbeat of `worker_id`.
    pub(super) async fn worker_beat(&self, worker_id: &str, in_flight: u32) -> Result<()> {
        sqlx::query(
            "INSERT INTO sched_workers (worker_id, host, started_at, last_beat, in_flight)
             VALUES ($1, $2, $3, $3, $4)
             ON CONFLICT (worker_id) DO UPDATE SET host = EXCLUDED.host,
                last_beat = EXCLUDED.last_beat, in_flight = EXCLUDED.in_flight",
        )
        .bind(worker_id)
        .bind(gleaner_framework::liveness::host())
        .bind(self.now())
        .bind(i32::try_from(in_flight).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::pg_on(
            &self.pool,
            "recording a worker's beat",
        ))?;
        Ok(())
    }

    /// Forgets a worker that stopped cleanly.
    pub(super) async fn worker_gone(&self, worker_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sched_workers WHERE worker_id = $1")
            .bind(worker_id)
            .execute(&self.pool)
            .await
            .map_err(SchedulerError::pg_on(&self.pool, "forgetting a worker"))?;
        Ok(())
    }

    /// The known workers with the jobs leased to each: the fleet's, in
    /// both modes (machines, no tenant's data; the lease counts are every
    /// tenant's).
    pub(super) async fn workers(&self) -> Result<Vec<WorkerState>> {
        let rows: Vec<WorkerRow> = sqlx::query_as(
            "SELECT w.worker_id, w.host, w.started_at, w.last_beat, w.in_flight,
                (SELECT COUNT(*) FROM sched_jobs j WHERE j.lease_owner = w.worker_id
                 AND j.state IN ('running', 'awaiting_user'))
             FROM sched_workers w ORDER BY w.worker_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, "listing workers"))?;
        Ok(rows
            .into_iter()
            .map(
                |(worker_id, host, started_at, last_beat, in_flight, leased)| WorkerState {
                    worker_id,
                    host,
                    started_at,
                    last_beat,
                    in_flight: u32::try_from(in_flight).unwrap_or(0),
                    leased: u32::try_from(leased).unwrap_or(0),
                },
            )
            .collect())
    }

    /// Queued and active jobs per konnector (of the tenant, in tenant
    /// mode).
    pub(super) async fn depth_by_konnector(&self) -> Result<BTreeMap<String, QueueDepth>> {
        const WHAT: &str = "counting queued jobs";
        let mut conn = self.conn(WHAT).await?;
        let rows: Vec<DepthRow> = sqlx::query_as(
            "SELECT konnector,
                COUNT(*) FILTER (WHERE state = 'queued' AND not_before <= $1),
                COUNT(*) FILTER (WHERE state = 'queued' AND not_before > $1),
                COUNT(*) FILTER (WHERE state IN ('running', 'awaiting_user'))
             FROM sched_jobs WHERE state IN ('queued', 'running', 'awaiting_user')
               AND ($2::text IS NULL OR tenant_id = $2)
             GROUP BY konnector",
        )
        .bind(self.now())
        .bind(self.tenant_name())
        .fetch_all(&mut *conn)
        .await
        .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        conn.done()
            .await
            .map_err(SchedulerError::pg_on(&self.pool, WHAT))?;
        Ok(rows
            .into_iter()
            .map(|(konnector, due, later, active)| {
                let n = |v: i64| u64::try_from(v).unwrap_or(0);
                (
                    konnector,
                    QueueDepth {
                        due: n(due),
                        later: n(later),
                        active: n(active),
                    },
                )
            })
            .collect())
    }

    /// Waits for a notification on [`WAKE_CHANNEL`], at most `max`; sleeps
    /// out `max` when it cannot listen (the poll takes over).
    pub(super) async fn wait_for_work(&self, max: StdDuration) {
        let deadline = tokio::time::Instant::now() + max;
        match tokio::time::timeout_at(deadline, self.notified()).await {
            Ok(true) | Err(_) => {}
            Ok(false) => tokio::time::sleep_until(deadline).await,
        }
    }

    /// The next notification: `true` when one came, `false` when the
    /// listener failed (it is opened again at the next wait).
    async fn notified(&self) -> bool {
        let mut guard = self.listener.lock().await;
        if guard.is_none() {
            match self.listen().await {
                Ok(listener) => *guard = Some(listener),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for queued jobs; polling");
                    return false;
                }
            }
        }
        let Some(listener) = guard.as_mut() else {
            return false;
        };
        match listener.recv().await {
            Ok(n) => {
                tracing::debug!(
                    konnector = n.payload(),
                    "woken: work queued or a slot freed"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the wake-up listener; polling");
                *guard = None;
                false
            }
        }
    }

    /// A listener on [`WAKE_CHANNEL`], on a connection of its own (a pool
    /// of one beside the queue's, so it never takes a worker's connection).
    async fn listen(&self) -> std::result::Result<PgListener, sqlx::Error> {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let mut listener = PgListener::connect_with(&own).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(WAKE_CHANNEL).await?;
        Ok(listener)
    }
}
