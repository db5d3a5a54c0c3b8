//! `sched_workers`: the daemons' heartbeats and clean stops, the jobs
//! leased to each, and the queue's depth per konnector, for
//! `gleaner status`.

use std::collections::BTreeMap;

use super::schema::parse_ts;
use super::{Queue, QueueDepth, WorkerState, ts};
use crate::error::{Result, SchedulerError};

/// A worker row with its leased jobs: id, host, start, last beat, in
/// flight, leased.
type WorkerRow = (String, String, String, String, i64, i64);

/// A konnector's queued-due, queued-later and active counts.
type DepthRow = (String, i64, i64, i64);

impl Queue {
    /// Records a heartbeat of `worker_id` ([`super::JobQueue::worker_beat`]).
    pub async fn worker_beat(&self, worker_id: &str, in_flight: u32) -> Result<()> {
        let now = ts(self.now());
        sqlx::query(
            "INSERT INTO sched_workers (worker_id, host, started_at, last_beat, in_flight)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (worker_id) DO UPDATE SET host = excluded.host,
                last_beat = excluded.last_beat, in_flight = excluded.in_flight",
        )
        .bind(worker_id)
        .bind(gleaner_framework::liveness::host())
        .bind(&now)
        .bind(&now)
        .bind(i64::from(in_flight))
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(
            &self.pool,
            "recording a worker's beat",
        ))?;
        Ok(())
    }

    /// Forgets a worker that stopped cleanly ([`super::JobQueue::worker_gone`]).
    pub async fn worker_gone(&self, worker_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sched_workers WHERE worker_id = ?")
            .bind(worker_id)
            .execute(&self.pool)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "forgetting a worker"))?;
        Ok(())
    }

    /// The known workers with the jobs leased to each
    /// ([`super::JobQueue::workers`]).
    pub async fn workers(&self) -> Result<Vec<WorkerState>> {
        let rows: Vec<WorkerRow> = sqlx::query_as(
            "SELECT w.worker_id, w.host, w.started_at, w.last_beat, w.in_flight,
                (SELECT COUNT(*) FROM sched_jobs j WHERE j.lease_owner = w.worker_id
                 AND j.state IN ('running', 'awaiting_user'))
             FROM sched_workers w ORDER BY w.worker_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "listing workers"))?;
        Ok(rows
            .into_iter()
            .map(
                |(worker_id, host, started, beat, in_flight, leased)| WorkerState {
                    worker_id,
                    host,
                    started_at: parse_ts(&started).unwrap_or_default(),
                    last_beat: parse_ts(&beat).unwrap_or_default(),
                    in_flight: u32::try_from(in_flight).unwrap_or(0),
                    leased: u32::try_from(leased).unwrap_or(0),
                },
            )
            .collect())
    }

    /// Queued and active jobs per konnector
    /// ([`super::JobQueue::depth_by_konnector`]).
    pub async fn depth_by_konnector(&self) -> Result<BTreeMap<String, QueueDepth>> {
        let rows: Vec<DepthRow> = sqlx::query_as(
            "SELECT konnector,
                SUM(CASE WHEN state = 'queued' AND not_before <= ?1 THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'queued' AND not_before > ?1 THEN 1 ELSE 0 END),
                SUM(CASE WHEN state IN ('running', 'awaiting_user') THEN 1 ELSE 0 END)
             FROM sched_jobs WHERE state IN ('queued', 'running', 'awaiting_user')
             GROUP BY konnector",
        )
        .bind(ts(self.now()))
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "counting queued jobs"))?;
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
}
