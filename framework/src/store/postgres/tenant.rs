//! The tenant wall on PostgreSQL: [`begin_scoped`] opens a transaction that
//! row-level security confines to one tenant's rows.

use sqlx::{PgPool, Postgres, Transaction};

use crate::tenant::{TENANT_ROLE, TENANT_SETTING, TenantId};

/// Begins a transaction on `pool` that takes the role
/// [`TENANT_ROLE`] and names `tenant` in [`TENANT_SETTING`], both for this
/// transaction only (`set_config(…, true)`, like `SET LOCAL`): the
/// row-level security policies then show and accept only that tenant's
/// rows, whatever the query says. The code's own `tenant_id = $n` filters
/// stay the first wall.
///
/// The transaction owns its connection (`'static`): it may outlive the
/// borrow of `pool`, as a token lock's does.
pub async fn begin_scoped(
    pool: &PgPool,
    tenant: &TenantId,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('role', $1, true), set_config($2, $3, true)")
        .bind(TENANT_ROLE)
        .bind(TENANT_SETTING)
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
