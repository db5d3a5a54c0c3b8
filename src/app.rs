//! The opened installation: data directory, store, files, vault and the
//! konnector registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::oauth::TokenManager;
use gleaner_framework::session::Sessions;
use gleaner_framework::store::{Account, AccountStore, DocStore, FileStore, SqliteStore};
use gleaner_framework::vault::{self, KdfParams, Vault, VaultLocation};
use gleaner_framework::{RunEnv, Secret};
use gleaner_konnectors::Registry;
use gleaner_scheduler::{Clock, KonnectorSource, Queue, Scheduler, SchedulerConfig, SystemClock};

/// Everything a command needs.
pub struct App {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The store.
    pub store: SqliteStore,
    /// The files tree.
    pub files: FileStore,
    /// The credentials vault.
    pub vault: Arc<Vault>,
    /// The scheduler's settings (`gleaner.toml`).
    pub config: SchedulerConfig,
    /// OAuth tokens (one per process: it serializes refreshes).
    pub oauth: Arc<TokenManager>,
    /// The konnectors.
    pub registry: Registry,
}

impl App {
    /// Opens (creating if needed) the installation in `data_dir`.
    pub async fn open(data_dir: Option<PathBuf>) -> Result<Self> {
        let data_dir = match data_dir {
            Some(d) => d,
            None => directories::ProjectDirs::from("", "", "gleaner")
                .map(|p| p.data_dir().to_owned())
                .context("no home directory: give --data-dir or set GLEANER_HOME")?,
        };
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let store = SqliteStore::open(&data_dir.join("gleaner.db")).await?;
        let files = FileStore::open(&data_dir.join("files"))?;
        // The key source: a passphrase header if one exists (passphrase from
        // GLEANER_PASSPHRASE or a prompt), else the key file; a new data
        // directory gets a passphrase vault when GLEANER_PASSPHRASE is set.
        let env_passphrase = std::env::var("GLEANER_PASSPHRASE")
            .ok()
            .filter(|p| !p.is_empty())
            .map(Secret::new);
        let (vault, notes) = vault::open_for_store(
            &VaultLocation::new(&data_dir),
            &store,
            env_passphrase,
            &prompt_passphrase,
            KdfParams::LAPTOP,
        )
        .await?;
        for note in notes.notes {
            tracing::warn!("{note}");
        }
        let vault = Arc::new(vault);
        let oauth = Arc::new(TokenManager::new(store.clone(), Arc::clone(&vault))?);
        let registry = Registry::builtin()?;
        let config = SchedulerConfig::load(&data_dir.join("gleaner.toml"))?;
        Ok(Self {
            data_dir,
            store,
            files,
            vault,
            config,
            oauth,
            registry,
        })
    }

    /// Where runs keep login sessions, sealed by the vault.
    pub fn sessions(&self) -> Sessions {
        Sessions::new(Arc::new(self.store.clone()), Arc::clone(&self.vault))
    }

    /// The run environment shared by runs.
    pub fn run_env(&self) -> RunEnv {
        RunEnv {
            store: Arc::new(self.store.clone()) as Arc<dyn DocStore>,
            files: self.files.clone(),
            retry: RetryPolicy::default(),
        }
    }

    /// The scheduler over this installation; `role` names this process on
    /// job leases (`daemon`, `cli`).
    pub async fn scheduler(&self, role: &str) -> Result<Arc<Scheduler>> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let queue = Queue::open(self.store.pool().clone(), clock).await?;
        let registry = self.registry.clone();
        let konnectors: Arc<dyn KonnectorSource> =
            Arc::new(move |slug: &str| registry.get(slug).ok().map(|e| Arc::clone(&e.konnector)));
        Ok(Arc::new(Scheduler {
            queue,
            env: self.run_env(),
            accounts: Arc::new(self.store.clone()),
            vault: Arc::clone(&self.vault),
            konnectors,
            config: self.config.clone(),
            owner: Scheduler::new_owner(role),
            oauth: Some(Arc::clone(&self.oauth)),
            sessions: Some(self.sessions()),
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
    pub fn secrets(&self, account: &Account) -> Result<BTreeMap<String, Secret>> {
        Ok(self.vault.open(&account.id, &account.sealed_secrets)?)
    }

    /// The absolute path of the files tree.
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
            gleaner_framework::KonnectorError::new(
                gleaner_framework::ErrorCode::LoginFailedNeedsSecret,
                format!("cannot read the passphrase: {e}"),
            )
        })
}
