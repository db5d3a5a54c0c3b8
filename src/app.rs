//! The opened installation: data directory, store, files, vault and the
//! konnector registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::oauth::TokenManager;
use gleaner_framework::session::Sessions;
use gleaner_framework::store::{
    Account, AccountStore, Backend, DocStore, FileStore, PgStore, SqliteStore,
};
use gleaner_framework::vault::envelope::TenantKeys;
use gleaner_framework::vault::{self, KdfParams, Vault, VaultLocation};
use gleaner_framework::{RunEnv, Secret, TenantId};
use gleaner_konnectors::Registry;
use gleaner_scheduler::{
    Clock, DatabaseConfig, JobQueue, KonnectorSource, PgQueue, Queue, Scheduler, SchedulerConfig,
    SystemClock,
};
use tokio::sync::OnceCell;

/// Everything a command needs, for one tenant of the installation.
pub struct App {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The tenant whose data this command sees (`--tenant`; on SQLite
    /// always the default one).
    pub tenant: TenantId,
    /// Whether `--tenant` named it: a daemon without it runs every
    /// tenant's jobs.
    pub tenant_given: bool,
    /// The store, scoped to [`App::tenant`]: SQLite in the data directory,
    /// or PostgreSQL (`--database`, `GLEANER_DATABASE`, `[database] url`).
    pub store: Arc<dyn Backend>,
    /// The installation's store by engine (on PostgreSQL the default
    /// tenant's scope), for what only one engine has (the queue on its
    /// pool, tenants, the vault key's id).
    engine: Engine,
    /// The tenant's files tree.
    pub files: FileStore,
    /// The installation's vault (the default tenant's), opened on first
    /// use: it seals the other tenants' data keys.
    installation_vault: OnceCell<Arc<Vault>>,
    /// The credentials vault, opened on first use ([`App::vault`]): the
    /// commands that need no secret (lists, documents, export, removing an
    /// account) work even when the key is lost, and never ask for the
    /// passphrase.
    vault: OnceCell<Arc<Vault>>,
    /// OAuth tokens (one per process: it serializes refreshes).
    oauth: OnceCell<Arc<TokenManager>>,
    /// The scheduler's settings (`gleaner.toml`).
    pub config: SchedulerConfig,
    /// The konnectors.
    pub registry: Registry,
}

/// The engine an installation runs on.
#[derive(Clone)]
enum Engine {
    /// The embedded file `gleaner.db`.
    Sqlite(SqliteStore),
    /// A PostgreSQL database shared by a fleet of workers.
    Postgres(PgStore),
}

/// The connection pool's size per process when `[database]` sets none.
const DEFAULT_PG_CONNECTIONS: u32 = 8;

/// The files tree of `tenant` in `data_dir`: `files/` for the default
/// tenant, `tenants/<name>/files/` for the others.
pub fn tenant_files_dir(data_dir: &Path, tenant: &TenantId) -> PathBuf {
    if tenant.is_default() {
        data_dir.join("files")
    } else {
        TenantKeys::new(data_dir).dir(tenant).join("files")
    }
}

/// Opens the store named by `--database` / `GLEANER_DATABASE` (`flag`),
/// else `gleaner.toml`'s `[database] url`, else the SQLite file.
async fn open_engine(data_dir: &Path, flag: Option<String>) -> Result<Engine> {
    let config = DatabaseConfig::load(&data_dir.join("gleaner.toml"))?;
    let url = flag.filter(|u| !u.trim().is_empty()).or(config.url);
    match url {
        None => Ok(Engine::Sqlite(
            SqliteStore::open(&data_dir.join("gleaner.db")).await?,
        )),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let max = config.max_connections.unwrap_or(DEFAULT_PG_CONNECTIONS);
            Ok(Engine::Postgres(PgStore::open_with(&url, max).await?))
        }
        Some(url) => {
            let scheme = url.split("://").next().unwrap_or_default();
            bail!(
                "the database `{scheme}://…` is not one Gleaner runs on: give a postgres:// URL, or none for the SQLite file in the data directory"
            )
        }
    }
}

/// Adds the Cozy konnectors installed in the data directory. One that no
/// longer loads is left out with a warning naming it (the others and the
/// built-in ones still work).
fn add_installed(registry: &mut Registry, data_dir: &std::path::Path) {
    let (found, errors) = gleaner_cozy_host::install::installed(data_dir);
    for e in errors {
        tracing::warn!(error = %e, "an installed konnector does not load");
    }
    let scratch = data_dir.join("konnectors").join(".runs");
    for installed in found {
        let dir = installed.dir.clone();
        let kind = match &installed.record.allow_hosts {
            Some(hosts) => format!("Cozy Node konnector (may contact {})", hosts.join(", ")),
            None => "Cozy Node konnector (may contact any host)".to_owned(),
        };
        let konnector = match gleaner_cozy_host::NodeKonnector::new(installed, scratch.clone()) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e.message, "an installed konnector does not load");
                continue;
            }
        };
        let origin = gleaner_konnectors::Origin::Installed { kind, dir };
        if let Err(e) = registry.add_installed(std::sync::Arc::new(konnector), origin) {
            tracing::warn!(error = %e.message, "an installed konnector is left out");
        }
    }
}

/// The Cozy konnector installed under `slug`, read from its folder now.
fn installed_konnector(
    data_dir: &std::path::Path,
    slug: &str,
) -> Option<Arc<dyn gleaner_framework::Konnector>> {
    let installed = gleaner_cozy_host::install::load_slug(data_dir, slug).ok()?;
    let scratch = data_dir.join("konnectors").join(".runs");
    match gleaner_cozy_host::NodeKonnector::new(installed, scratch) {
        Ok(k) => Some(Arc::new(k)),
        Err(e) => {
            tracing::warn!(slug, error = %e.message, "an installed konnector does not load");
            None
        }
    }
}

impl App {
    /// Opens (creating if needed) the installation in `data_dir`, scoped
    /// to `tenant` (default: the default tenant). A tenant other than the
    /// default needs PostgreSQL and must exist (`gleaner tenants add`).
    pub async fn open(
        data_dir: Option<PathBuf>,
        database: Option<String>,
        tenant: Option<String>,
    ) -> Result<Self> {
        let tenant_given = tenant.is_some();
        let tenant = match tenant.as_deref().map(str::trim) {
            None | Some("") => TenantId::default_tenant(),
            Some(name) => TenantId::parse(name)?,
        };
        let data_dir = match data_dir {
            Some(d) => d,
            None => directories::ProjectDirs::from("", "", "gleaner")
                .map(|p| p.data_dir().to_owned())
                .context("no home directory: give --data-dir or set GLEANER_HOME")?,
        };
        gleaner_framework::store::files::create_private_dir(&data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        // Personal data: the folder is the user's alone, even one that
        // existed before Gleaner used it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(&data_dir)
                && meta.permissions().mode() & 0o077 != 0
                && let Err(e) =
                    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
            {
                tracing::warn!(dir = %data_dir.display(), error = %e, "cannot make the data directory private");
            }
        }
        let engine = open_engine(&data_dir, database).await?;
        let store: Arc<dyn Backend> = match &engine {
            Engine::Sqlite(s) => {
                if !tenant.is_default() {
                    s.close().await;
                    bail!(
                        "tenants need PostgreSQL: this installation keeps its data in the SQLite file {}, which holds one tenant, `default`; give --database postgres://… (see docs/postgres.md), or no --tenant",
                        data_dir.join("gleaner.db").display()
                    );
                }
                Arc::new(s.clone())
            }
            Engine::Postgres(p) => {
                if !tenant.is_default() && !p.tenant_exists(&tenant).await? {
                    bail!(
                        "no tenant `{tenant}` in {}: `gleaner tenants list` shows them, `gleaner tenants add {tenant}` makes it",
                        p.place()
                    );
                }
                Arc::new(p.with_tenant(tenant.clone()))
            }
        };
        let files = FileStore::open(&tenant_files_dir(&data_dir, &tenant))?;
        let mut registry = Registry::builtin()?;
        add_installed(&mut registry, &data_dir);
        // Accounts made before folders were recorded keep the folder their
        // files are in (unless another account claimed it first).
        let assigned = store
            .assign_missing_folders(&|a: &Account| {
                let name = registry
                    .get(&a.konnector)
                    .map(|e| e.konnector.manifest().name.clone())
                    .unwrap_or_else(|_| a.konnector.clone());
                (
                    format!(
                        "{}/{}",
                        gleaner_framework::store::files::sanitize_name(&name),
                        gleaner_framework::store::files::sanitize_name(&a.label)
                    ),
                    Account::default_folder(&name, &a.id),
                )
            })
            .await?;
        for (id, folder) in assigned {
            tracing::info!(account = %id, folder = %folder, "account folder recorded");
        }
        let config = SchedulerConfig::load(&data_dir.join("gleaner.toml"))?;
        Ok(Self {
            data_dir,
            tenant,
            tenant_given,
            store,
            engine,
            files,
            installation_vault: OnceCell::new(),
            vault: OnceCell::new(),
            oauth: OnceCell::new(),
            config,
            registry,
        })
    }

    /// The tenant's vault, opened on first use: the installation's vault
    /// for the default tenant, else the tenant's data key opened by it
    /// (envelope encryption, [`TenantKeys`]).
    pub async fn vault(&self) -> Result<Arc<Vault>> {
        let vault = self
            .vault
            .get_or_try_init(|| async {
                let installation = self.installation_vault().await?;
                if self.tenant.is_default() {
                    return Ok::<_, anyhow::Error>(installation);
                }
                let keys = TenantKeys::new(&self.data_dir);
                Ok(Arc::new(keys.open(&installation, &self.tenant)?))
            })
            .await?;
        Ok(Arc::clone(vault))
    }

    /// The installation's store: on PostgreSQL its default tenant's scope
    /// (the vault key's id is the installation's), else the SQLite store.
    pub fn installation_store(&self) -> Arc<dyn Backend> {
        match &self.engine {
            Engine::Sqlite(s) => Arc::new(s.clone()),
            Engine::Postgres(p) => Arc::new(p.with_tenant(TenantId::default_tenant())),
        }
    }

    /// The PostgreSQL store of the installation (default tenant's scope),
    /// `None` on SQLite.
    pub fn postgres(&self) -> Option<&PgStore> {
        match &self.engine {
            Engine::Postgres(p) => Some(p),
            Engine::Sqlite(_) => None,
        }
    }

    /// The installation's vault, opened (and on a new installation
    /// created) on first use.
    ///
    /// The key source: a passphrase header if one exists (passphrase from
    /// GLEANER_PASSPHRASE or a prompt), else the key file; a new data
    /// directory gets a passphrase vault when GLEANER_PASSPHRASE is set. A
    /// store that holds sealed records, or tenants' data keys, never gets
    /// a new key.
    pub async fn installation_vault(&self) -> Result<Arc<Vault>> {
        let vault = self
            .installation_vault
            .get_or_try_init(|| async {
                let location = VaultLocation::new(&self.data_dir);
                if location.detect().is_none() {
                    let sealed_keys = TenantKeys::new(&self.data_dir).tenants()?;
                    if !sealed_keys.is_empty() {
                        bail!(
                            "vault: the installation's key is missing ({} and {}), and the data keys of {} tenant(s) ({}) are sealed with it; no new key was made. Restore the key file (or the passphrase header) from a backup",
                            location.key_file().display(),
                            location.header_file().display(),
                            sealed_keys.len(),
                            sealed_keys
                                .iter()
                                .map(TenantId::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                }
                let installation_store = self.installation_store();
                let env_passphrase = match std::env::var("GLEANER_PASSPHRASE") {
                    Ok(p) if p.is_empty() => bail!(
                        "GLEANER_PASSPHRASE is set but empty: give the passphrase, or unset it to use the key file"
                    ),
                    Ok(p) => Some(Secret::new(p)),
                    Err(_) => None,
                };
                let (vault, notes) = vault::open_for_store(
                    &location,
                    &*installation_store,
                    env_passphrase,
                    &prompt_passphrase,
                    KdfParams::LAPTOP,
                )
                .await
                .map_err(|e| {
                    let lost = e.code == gleaner_framework::ErrorCode::VaultFailed
                        && e.message.contains("is missing");
                    let err = anyhow::Error::new(e);
                    if lost {
                        err.context(
                            "commands that need no secret still work: `gleaner accounts list`, `gleaner docs`, `gleaner export`, and `gleaner accounts remove <account>` (its documents are kept)",
                        )
                    } else {
                        err
                    }
                })?;
                for note in notes.notes {
                    tracing::warn!("{note}");
                }
                for step in notes.next_steps {
                    // No account is concerned: every step here is the
                    // installation's (switching the vault).
                    tracing::warn!("next: {}", crate::terminal::command_for(step, ""));
                }
                Ok::<_, anyhow::Error>(Arc::new(vault))
            })
            .await?;
        Ok(Arc::clone(vault))
    }

    /// The process's OAuth token manager (opens the vault).
    pub async fn oauth(&self) -> Result<Arc<TokenManager>> {
        let oauth = self
            .oauth
            .get_or_try_init(|| async {
                let vault = self.vault().await?;
                Ok::<_, anyhow::Error>(Arc::new(TokenManager::new(
                    Arc::clone(&self.store) as Arc<dyn gleaner_framework::store::TokenStore>,
                    vault,
                )?))
            })
            .await?;
        Ok(Arc::clone(oauth))
    }

    /// Where runs keep login sessions, sealed by the vault.
    fn sessions(&self, vault: Arc<Vault>) -> Sessions {
        Sessions::new(Arc::clone(&self.store) as _, vault)
    }

    /// The run environment shared by runs.
    pub fn run_env(&self) -> RunEnv {
        RunEnv {
            store: Arc::clone(&self.store) as Arc<dyn DocStore>,
            files: self.files.clone(),
            retry: RetryPolicy::default(),
        }
    }

    /// The scheduler over this installation, able to run jobs (it opens
    /// the vault); `role` names this process on job leases (`daemon`,
    /// `cli`).
    pub async fn scheduler(&self, role: &str) -> Result<Arc<Scheduler>> {
        let vault = self.vault().await?;
        let oauth = self.oauth().await?;
        self.build_scheduler(role, Some((vault, oauth)), false)
            .await
    }

    /// The daemon's scheduler. On PostgreSQL without `--tenant` it claims
    /// the jobs of every tenant and runs each in its tenant's scope
    /// ([`crate::tenants::Scopes`]); with `--tenant`, or on SQLite, it is
    /// [`App::scheduler`].
    pub async fn daemon_scheduler(&self) -> Result<Arc<Scheduler>> {
        if self.tenant_given || self.postgres().is_none() {
            return self.scheduler("daemon").await;
        }
        let vault = self.vault().await?;
        let oauth = self.oauth().await?;
        self.build_scheduler("daemon", Some((vault, oauth)), true)
            .await
    }

    /// The scheduler for commands that only read or plan (status, jobs,
    /// schedule, triggers): it does not open the vault.
    pub async fn planner(&self) -> Result<Arc<Scheduler>> {
        let sched = self.build_scheduler("cli", None, false).await?;
        // Jobs of processes that died (or could not record their outcome,
        // on a full disk) are settled first, so what is shown is true: done
        // if their run committed, queued again if not. Best effort: on a
        // full disk the listing still works.
        if let Err(e) = sched.queue.recover().await {
            tracing::warn!(error = %e, "cannot settle the jobs of stopped processes");
        }
        Ok(sched)
    }

    async fn build_scheduler(
        &self,
        role: &str,
        secrets: Option<(Arc<Vault>, Arc<TokenManager>)>,
        fleet: bool,
    ) -> Result<Arc<Scheduler>> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut tenants: Option<Arc<dyn gleaner_scheduler::TenantScopes>> = None;
        let queue: Arc<dyn JobQueue> = match &self.engine {
            Engine::Sqlite(s) => Arc::new(Queue::open(s.pool().clone(), clock).await?),
            Engine::Postgres(p) => {
                let queue = PgQueue::open(p.pool().clone(), clock).await?;
                if fleet {
                    tenants = Some(Arc::new(crate::tenants::Scopes::new(
                        self.data_dir.clone(),
                        p.clone(),
                        self.installation_vault().await?,
                    )));
                    Arc::new(queue)
                } else {
                    Arc::new(queue.for_tenant(self.tenant.clone()))
                }
            }
        };
        let registry = self.registry.clone();
        let data_dir = self.data_dir.clone();
        // A Cozy konnector installed after this process started (a running
        // daemon) is read from its folder when its first job comes.
        let konnectors: Arc<dyn KonnectorSource> = Arc::new(move |slug: &str| {
            registry
                .get(slug)
                .ok()
                .map(|e| Arc::clone(&e.konnector))
                .or_else(|| installed_konnector(&data_dir, slug))
        });
        Ok(Arc::new(Scheduler {
            queue,
            env: self.run_env(),
            accounts: Arc::clone(&self.store) as Arc<dyn AccountStore>,
            vault: secrets.as_ref().map(|(v, _)| Arc::clone(v)),
            konnectors,
            config: self.config.clone(),
            owner: Scheduler::new_owner(role),
            oauth: secrets.as_ref().map(|(_, o)| Arc::clone(o)),
            sessions: secrets.map(|(v, _)| self.sessions(v)),
            progress: None,
            tenant: self.tenant.clone(),
            tenants,
        }))
    }

    /// Finds an account by id, unique id prefix, or label.
    pub async fn find_account(&self, what: &str) -> Result<Account> {
        let accounts = self.store.list_accounts().await?;
        if let Some(a) = accounts.iter().find(|a| a.id == what || a.label == what) {
            return Ok(a.clone());
        }
        let matches: Vec<_> = accounts.iter().filter(|a| a.id.starts_with(what)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!("no account `{what}`; `gleaner accounts list` shows them"),
            _ => bail!(
                "`{what}` matches {} accounts; give more of the id",
                matches.len()
            ),
        }
    }

    /// Opens an account's secrets.
    pub async fn secrets(&self, account: &Account) -> Result<BTreeMap<String, Secret>> {
        Ok(self
            .vault()
            .await?
            .open(&account.id, &account.sealed_secrets)?)
    }

    /// Closes the store's connections (SQLite checkpoints the WAL into the
    /// database file when the last one closes).
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// The absolute path of the files tree.
    #[cfg_attr(not(feature = "sandboxes"), allow(dead_code))]
    pub fn files_root(&self) -> &Path {
        self.files.root()
    }
}

/// Asks for the vault passphrase on the terminal; `None` without one.
fn prompt_passphrase() -> Result<Option<Secret>, gleaner_framework::KonnectorError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    rpassword::prompt_password("Vault passphrase: ")
        .map(|p| Some(Secret::new(p)))
        .map_err(|e| {
            gleaner_framework::KonnectorError::vault(format!("cannot read the passphrase: {e}"))
        })
}
