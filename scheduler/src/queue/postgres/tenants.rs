//! The two modes of [`PgQueue`] (fleet, tenant) as connections, and
//! [`remove_tenant_rows`], the removal of one tenant's queue rows.

use std::ops::{Deref, DerefMut};

use gleaner_framework::store::postgres::tenant::begin_scoped;
use gleaner_framework::tenant::TenantId;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Transaction};

use super::PgQueue;
use crate::error::{Result, SchedulerError};

/// A connection of a queue's scope, for the statements that need no
/// transaction of their own: in fleet mode a connection of the pool (no
/// `BEGIN`, no `COMMIT`: the daemon's hot paths stay one round trip), in
/// tenant mode a transaction confined to the tenant ([`begin_scoped`]),
/// committed by [`Conn::done`].
pub(super) enum Conn<'p> {
    /// Fleet mode: a plain connection.
    Fleet(PoolConnection<Postgres>),
    /// Tenant mode: a scoped transaction.
    Scoped(Transaction<'p, Postgres>),
}

impl Deref for Conn<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Fleet(c) => c,
            Conn::Scoped(t) => t,
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Fleet(c) => &mut *c,
            Conn::Scoped(t) => &mut *t,
        }
    }
}

impl Conn<'_> {
    /// Ends the work: commits a scoped transaction (a dropped one rolls
    /// back), returns a fleet connection to the pool.
    pub(super) async fn done(self) -> std::result::Result<(), sqlx::Error> {
        match self {
            Conn::Fleet(_) => Ok(()),
            Conn::Scoped(t) => t.commit().await,
        }
    }
}

impl PgQueue {
    /// A connection of this queue's scope ([`Conn`]).
    pub(super) async fn conn(&self, what: &'static str) -> Result<Conn<'_>> {
        let on = SchedulerError::pg_on(&self.pool, what);
        match &self.tenant {
            Some(t) => Ok(Conn::Scoped(begin_scoped(&self.pool, t).await.map_err(on)?)),
            None => Ok(Conn::Fleet(self.pool.acquire().await.map_err(on)?)),
        }
    }

    /// The tenant's name to bind where a statement filters
    /// `($n::text IS NULL OR tenant_id = $n)`: `None` in fleet mode (every
    /// tenant), the tenant's name in tenant mode.
    pub(super) fn tenant_name(&self) -> Option<&str> {
        self.tenant.as_ref().map(TenantId::as_str)
    }
}

/// What [`remove_tenant_rows`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovedRows {
    /// Triggers.
    pub triggers: u64,
    /// Jobs, of every state (history included).
    pub jobs: u64,
    /// Second-factor answers not yet taken.
    pub answers: u64,
}

/// Deletes every trigger, job and second-factor answer of `tenant`, on
/// `conn` (the caller's transaction, which also removes the tenant's store
/// rows, so both go or neither). A run of that tenant still in flight
/// finds its job gone when it ends: its outcome is dropped with a
/// warning, as for any job no longer held. The default tenant is refused
/// with [`SchedulerError::Config`]: it is the installation's own.
pub async fn remove_tenant_rows(conn: &mut PgConnection, tenant: &TenantId) -> Result<RemovedRows> {
    if tenant.is_default() {
        return Err(SchedulerError::Config(format!(
            "the tenant `{tenant}` is the installation's default one: it cannot be removed"
        )));
    }
    let on = |what: &'static str| {
        move |e: sqlx::Error| {
            SchedulerError::Store(gleaner_framework::KonnectorError::store(format!(
                "job queue: removing the rows of tenant {tenant}: {what}: {e}"
            )))
        }
    };
    let answers = sqlx::query("DELETE FROM sched_twofa_answers WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .execute(&mut *conn)
        .await
        .map_err(on("answers"))?
        .rows_affected();
    let jobs = sqlx::query("DELETE FROM sched_jobs WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .execute(&mut *conn)
        .await
        .map_err(on("jobs"))?
        .rows_affected();
    let triggers = sqlx::query("DELETE FROM sched_triggers WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .execute(&mut *conn)
        .await
        .map_err(on("triggers"))?
        .rows_affected();
    Ok(RemovedRows {
        triggers,
        jobs,
        answers,
    })
}
