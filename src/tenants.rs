//! Tenants of a PostgreSQL installation: `gleaner tenants add|list|remove`,
//! and [`Scopes`], which gives the fleet's daemon each job's tenant (its
//! store scope, files, vault).
//!
//! A tenant is a row in the database (`tenants`), a folder in the data
//! directory (`tenants/<name>/`: its files and its data key) and, on every
//! row of the store and the queue, a `tenant_id`. The data key seals the
//! tenant's secrets and is itself sealed by the installation's key
//! ([`TenantKeys`]); removing the tenant destroys it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::oauth::TokenManager;
use gleaner_framework::session::Sessions;
use gleaner_framework::store::{FileStore, PgStore, TokenStore};
use gleaner_framework::vault::Vault;
use gleaner_framework::vault::envelope::TenantKeys;
use gleaner_framework::{KonnectorError, RunEnv, TenantId};
use gleaner_scheduler::{TenantScope, TenantScopes};

use crate::app::{App, tenant_files_dir};
use crate::terminal::table;

/// The PostgreSQL store, or the reason tenants are not available.
fn postgres(app: &App) -> Result<&PgStore> {
    app.postgres().context(
        "tenants need PostgreSQL: this installation keeps one person's data in its SQLite file (its only tenant is `default`); give --database postgres://… (see docs/postgres.md)",
    )
}

/// A name given on the command line, which must not be the default
/// tenant's.
fn named(name: &str, what: &str) -> Result<TenantId> {
    let tenant = TenantId::parse(name.trim())?;
    if tenant.is_default() {
        bail!("the `default` tenant always exists and cannot be {what}");
    }
    Ok(tenant)
}

/// `gleaner tenants add NAME`: its data key first (sealed by the
/// installation's key), then its row; a failed row removes the key again.
pub async fn add(app: &App, name: &str) -> Result<()> {
    let pg = postgres(app)?;
    let tenant = named(name, "added again")?;
    if pg.tenant_exists(&tenant).await? {
        bail!("the tenant `{tenant}` exists already (`gleaner tenants list`)");
    }
    let keys = TenantKeys::new(&app.data_dir);
    if keys.exists(&tenant) {
        bail!(
            "{} holds a data key for `{tenant}`, but the database has no such tenant: it belongs to a tenant removed from another database, or restored from a backup. Move that folder away if it is not needed, then add the tenant again",
            keys.dir(&tenant).display()
        );
    }
    let installation = app.installation_vault().await?;
    keys.create(&installation, &tenant)?;
    if let Err(e) = pg.create_tenant(&tenant, chrono::Utc::now()).await {
        if let Err(d) = keys.destroy(&tenant) {
            tracing::warn!(error = %d, "cannot remove the new data key after the failed insert");
        }
        return Err(e.into());
    }
    println!(
        "added tenant `{tenant}`: its data key is in {}; its commands take --tenant {tenant} (for example `gleaner --tenant {tenant} accounts add <konnector>`)",
        keys.dir(&tenant).display()
    );
    Ok(())
}

/// `gleaner tenants list`
pub async fn list(app: &App) -> Result<()> {
    let pg = postgres(app)?;
    let keys = TenantKeys::new(&app.data_dir);
    let mut t = table(&["tenant", "accounts", "documents", "since", "data key"]);
    for info in pg.list_tenants().await? {
        let key = if info.id.is_default() {
            "the installation's".to_owned()
        } else if keys.exists(&info.id) {
            "sealed, in the data directory".to_owned()
        } else {
            "MISSING: its secrets do not open".to_owned()
        };
        t.add_row(vec![
            info.id.to_string(),
            info.accounts.to_string(),
            info.documents.to_string(),
            info.created_at
                .with_timezone(&app.config.timezone)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            key,
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `gleaner tenants remove NAME`: every row of the tenant in one
/// transaction (store and queue), then its data key destroyed, then its
/// folder (files) removed.
pub async fn remove(app: &App, name: &str, yes: bool) -> Result<()> {
    let pg = postgres(app)?;
    let tenant = named(name, "removed")?;
    let keys = TenantKeys::new(&app.data_dir);
    let exists = pg.tenant_exists(&tenant).await?;
    if !exists && !keys.dir(&tenant).exists() {
        bail!("no tenant `{tenant}` (`gleaner tenants list` shows them)");
    }
    if !yes {
        let summary = pg
            .list_tenants()
            .await?
            .into_iter()
            .find(|i| i.id == tenant)
            .map(|i| format!("{} account(s), {} document(s)", i.accounts, i.documents))
            .unwrap_or_else(|| "no rows left in the database".into());
        if !std::io::stdin().is_terminal() {
            bail!(
                "removing tenant `{tenant}` ({summary}) destroys its data and its key for good: give --yes to confirm without a terminal"
            );
        }
        eprint!(
            "Remove tenant `{tenant}` ({summary}), its files and its data key, for good? Type its name to confirm: "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != tenant.as_str() {
            bail!("not confirmed: nothing was removed");
        }
    }
    let mut tx = pg
        .pool()
        .begin()
        .await
        .context("cannot begin the removal")?;
    let store =
        gleaner_framework::store::postgres::tenants::remove_tenant_rows(&mut tx, &tenant).await?;
    let queue = gleaner_scheduler::queue::remove_tenant_rows(&mut tx, &tenant).await?;
    tx.commit()
        .await
        .context("cannot commit the removal: nothing was removed")?;
    let key = keys.destroy(&tenant).with_context(|| {
        format!(
            "the tenant's rows are removed, but its data key could not be destroyed: remove {} by hand",
            keys.dir(&tenant).display()
        )
    })?;
    let dir = keys.dir(&tenant);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| {
            format!(
                "the tenant's rows and data key are removed, but its folder {} could not be: remove it by hand",
                dir.display()
            )
        })?;
    }
    println!(
        "removed tenant `{tenant}`: {} account(s), {} document(s), {} job(s); data key {}; folder {} removed",
        store.accounts,
        store.documents,
        queue.jobs,
        if key { "destroyed" } else { "already gone" },
        dir.display()
    );
    Ok(())
}

/// Each job's tenant for the fleet's daemon: the store scoped to it, its
/// files, its vault (its data key opened by the installation's). Made for
/// every job, never cached: a tenant removed and added again under the
/// same name gets a new key, which a cache would miss.
pub struct Scopes {
    data_dir: PathBuf,
    base: PgStore,
    installation: Arc<Vault>,
}

impl Scopes {
    /// The scopes of the installation in `data_dir` on `base`, whose
    /// installation vault is `installation`.
    pub fn new(data_dir: PathBuf, base: PgStore, installation: Arc<Vault>) -> Self {
        Self {
            data_dir,
            base,
            installation,
        }
    }
}

#[gleaner_framework::async_trait]
impl TenantScopes for Scopes {
    async fn scope(&self, tenant: &TenantId) -> Result<Arc<TenantScope>, KonnectorError> {
        let store = Arc::new(self.base.with_tenant(tenant.clone()));
        let vault = if tenant.is_default() {
            Arc::clone(&self.installation)
        } else {
            Arc::new(TenantKeys::new(&self.data_dir).open(&self.installation, tenant)?)
        };
        let files = FileStore::open(&tenant_files_dir(&self.data_dir, tenant))?;
        let oauth = TokenManager::new(
            Arc::clone(&store) as Arc<dyn TokenStore>,
            Arc::clone(&vault),
        )?;
        let sessions = Sessions::new(Arc::clone(&store) as _, Arc::clone(&vault));
        Ok(Arc::new(TenantScope {
            env: RunEnv {
                store: Arc::clone(&store) as _,
                files,
                retry: RetryPolicy::default(),
            },
            accounts: store as _,
            vault,
            oauth: Some(Arc::new(oauth)),
            sessions: Some(sessions),
        }))
    }
}
