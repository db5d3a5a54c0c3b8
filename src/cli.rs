//! The command line: one table of commands and flags, parsed by clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Gleaner brings your data home from the companies that hold it.
#[derive(Debug, Parser)]
#[command(name = "gleaner", version, about, long_about = None)]
pub struct Cli {
    /// The data directory (store, vault key, files). Defaults to the
    /// platform's data directory, e.g. ~/.local/share/gleaner.
    #[arg(long, global = true, env = "GLEANER_HOME")]
    pub data_dir: Option<PathBuf>,

    /// The database: `postgres://user@host/db` puts accounts, documents,
    /// sealed secrets and the job queue on PostgreSQL, shared by every
    /// worker that names it (files and the vault key stay in the data
    /// directory, on storage the workers share). Default: gleaner.toml's
    /// `[database] url`, else the SQLite file in the data directory.
    #[arg(long, global = true, env = "GLEANER_DATABASE", value_name = "URL")]
    pub database: Option<String>,

    /// The tenant (a person or household) whose data the command sees, on
    /// a PostgreSQL installation shared by several (`gleaner tenants`).
    /// Default: the `default` tenant; `gleaner daemon` without it runs the
    /// jobs of every tenant. SQLite holds one tenant, `default`.
    #[arg(long, global = true, env = "GLEANER_TENANT", value_name = "NAME")]
    pub tenant: Option<String>,

    /// More logs (-v: debug, -vv: trace) and error details.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the konnectors Gleaner knows; install or remove Cozy Node
    /// konnectors.
    Konnectors {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<KonnectorsCommand>,
    },
    /// Add, list, edit, pause, resume or remove accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Run an account's konnector once, now (recorded as a manual job).
    Run {
        /// The account: its id, a unique id prefix, or its label.
        account: String,
        /// Only queue the run for `gleaner daemon` and return.
        #[arg(long)]
        detach: bool,
        /// Record every HTTP exchange to a scrubbed cassette in this
        /// directory (`<dir>/<konnector>-<run id>.json`), failed runs too.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["detach", "replay"])]
        record: Option<PathBuf>,
        /// Replay a cassette offline (a file, or a directory: its newest
        /// cassette of the account's konnector) into a throwaway store;
        /// nothing is saved.
        #[arg(long, value_name = "FILE_OR_DIR", conflicts_with = "detach")]
        replay: Option<PathBuf>,
    },
    /// Run the scheduler in the foreground: every account at its slot,
    /// retries, queued manual runs. Stops cleanly on SIGINT/SIGTERM.
    Daemon {
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Runs at once, all konnectors (default: gleaner.toml, else 2 x CPUs).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Runs at once against one provider (default: gleaner.toml, else 4).
        /// On PostgreSQL the limit holds across every worker of the fleet.
        #[arg(long)]
        per_konnector: Option<usize>,
        /// This worker's name on job leases and in `gleaner status`
        /// (default: `daemon@<host>:<pid>`). Two live workers cannot share
        /// one: the second is refused.
        #[arg(long, value_name = "NAME")]
        worker_id: Option<String>,
    },
    /// Show each account's trigger and next run.
    Schedule,
    /// Show job history, newest first.
    Jobs {
        /// Only this account's jobs.
        #[arg(long)]
        account: Option<String>,
        /// Only failed jobs.
        #[arg(long)]
        failed: bool,
        /// At most this many.
        #[arg(long, default_value_t = 30)]
        limit: u32,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Each account's last result, at a glance.
    Status,
    /// Give the second-factor code a waiting run asked for.
    #[command(name = "2fa")]
    TwoFa {
        /// The account.
        account: String,
        /// The code (asked for when not given).
        code: Option<String>,
    },
    /// Replace an account's automatic slot with a cron expression, or go
    /// back to the slot.
    Trigger {
        /// The account.
        account: String,
        /// Five fields: minute hour day-of-month month day-of-week, in the
        /// installation's timezone; e.g. "30 2 * * *" or "0 6 * * 1-5".
        #[arg(long, conflicts_with = "auto")]
        cron: Option<String>,
        /// Back to the automatic slot.
        #[arg(long)]
        auto: bool,
    },
    /// List stored documents of a doctype (such as io.cozy.bills).
    Docs {
        /// The doctype.
        doctype: String,
        /// Only this account's documents.
        #[arg(long)]
        account: Option<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// At most this many documents.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Link bills to the bank operations that paid them (and health
    /// refunds to their credits), across accounts. This runs by itself
    /// after every run that brings bills or operations; see the links with
    /// `gleaner docs io.cozy.bank.operations`.
    Link,
    /// Write every stored document as JSON lines.
    Export {
        /// Only these doctypes (repeatable).
        #[arg(long = "doctype")]
        doctypes: Vec<String>,
        /// The file to write (default: standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Move an installation's SQLite store (accounts, sealed secrets,
    /// documents, konnector state, sessions, tokens, triggers) into an
    /// empty PostgreSQL database, in one transaction, checking every
    /// table's count on both sides. Files and the vault key stay in the
    /// data directory.
    Migrate {
        /// The data directory holding gleaner.db.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL database (`postgres://user@host/db`).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Show or rotate the vault that seals credentials and sessions.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Add, list or remove the tenants of a PostgreSQL installation: the
    /// people or households whose data it keeps apart.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Start the bundled provider sandboxes on loopback, create demo
    /// accounts pointing at them, run them all and show what was imported.
    Demo,
    /// Run one konnector's sandbox (an offline stand-in for the provider)
    /// on 127.0.0.1 in the foreground until Ctrl-C; prints its URL and the
    /// demo credentials that log in to it.
    Sandbox {
        /// The konnector slug (see `gleaner konnectors`).
        slug: String,
        /// The scenario (default: normal); the list is printed at start.
        #[arg(long)]
        scenario: Option<String>,
        /// The port on 127.0.0.1 (default, or 0: any free port).
        #[arg(long)]
        port: Option<u16>,
        /// Print one JSON line {"url", "fields", "scenarios"} instead.
        #[arg(long)]
        json: bool,
    },
    /// Run an account's konnector for its author: trace logs on stderr,
    /// every exchange recorded; on failure, every page and response it saw
    /// is saved (scrubbed) under <data dir>/dev/, and the failing selector
    /// or JSON path is printed with the saved page it was looked for on.
    Dev {
        /// The account: its id, a unique id prefix, or its label.
        account: String,
    },
    /// Write new code from templates (`gleaner new konnector acme-telco
    /// --category telco --kind html`).
    #[command(subcommand)]
    New(NewCommand),
    /// Serves the web interface: the catalogue, enabling a provider, consent
    /// and second factors, each account's status, the documents.
    Serve {
        /// The address to listen on; keep it on loopback unless a TLS proxy
        /// stands in front (then add --secure-cookies).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Leave scheduled runs to a separate `gleaner daemon` (by default
        /// this process runs them, and the runs started from a page).
        #[arg(long)]
        no_daemon: bool,
        /// Also accept a passphrase at the login page, read from
        /// GLEANER_UI_PASSPHRASE or asked on the terminal.
        #[arg(long)]
        passphrase: bool,
        /// Mark the session cookie `Secure` (the server is reached over TLS).
        #[arg(long)]
        secure_cookies: bool,
    },
}

/// `gleaner new ...`
#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// Write a konnector folder (manifest, auth, routes or api, pages, map,
    /// a working sandbox), its fixtures folder and a test that fails until
    /// it is filled in from a recorded cassette. Touches nothing else.
    Konnector {
        /// The slug: lowercase letters, digits and `-` (`acme-telco`); the
        /// folder is the slug with `_` (`acme_telco`).
        slug: String,
        /// The category folder.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::scaffold::CATEGORIES))]
        category: String,
        /// What the provider offers: a website (html), a JSON API (json),
        /// or a website whose login needs scripts (browser).
        #[arg(long, value_enum)]
        kind: crate::scaffold::Kind,
        /// The workspace root (default: found from the current directory).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
}

/// `gleaner konnectors ...`
#[derive(Debug, Subcommand)]
pub enum KonnectorsCommand {
    /// List every konnector, built in or installed, with its origin.
    List,
    /// Install a Cozy Node konnector's build (a folder or a .tar.gz holding
    /// manifest.konnector and index.js): Gleaner then runs it unchanged.
    Install {
        /// The build: a folder or a .tar.gz.
        source: PathBuf,
        /// A host the konnector may contact (`host`, `host:port` or
        /// `*.domain`; repeatable). Others are refused by Gleaner's proxy.
        #[arg(long = "allow-host", value_name = "HOST", conflicts_with = "any_host")]
        allow_hosts: Vec<String>,
        /// No allow-list: any host may be contacted (each is recorded).
        #[arg(long)]
        any_host: bool,
        /// Its run time limit in seconds (default 300).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Remove an installed konnector (its accounts stay, and cannot run
    /// until it is installed again).
    Remove {
        /// The installed konnector's slug.
        slug: String,
    },
}

/// `gleaner accounts ...`
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Add an account for a konnector; asks for the fields it needs.
    Add {
        /// The konnector slug (see `gleaner konnectors`).
        slug: String,
        /// A field value, `name=value` (repeatable); fields not given are
        /// prompted for, passwords hidden.
        #[arg(long = "field", value_parser = parse_field)]
        fields: Vec<(String, String)>,
        /// A label for the account (default: its identifier).
        #[arg(long)]
        label: Option<String>,
        /// Send requests to this base URL instead of the provider's (for a
        /// sandbox or a recording server on loopback). Only http(s); never
        /// a link-local or cloud metadata address.
        #[arg(long)]
        endpoint: Option<String>,
        /// Confirm an --endpoint that is not on this machine (a private or
        /// public address): the account's credentials will be sent there.
        #[arg(long, requires = "endpoint")]
        allow_remote_endpoint: bool,
        /// OAuth konnectors: only print the consent URL, do not try to open
        /// a browser.
        #[arg(long)]
        no_browser: bool,
        /// OAuth konnectors: the loopback port of the redirect (default: any
        /// free port).
        #[arg(long, default_value_t = 0)]
        oauth_port: u16,
    },
    /// List accounts with their last sync.
    List,
    /// Change an account's fields or credentials (`--field password=`
    /// prompts); lifts the pause after a credentials error.
    Edit {
        /// The account: id, unique id prefix, or label.
        account: String,
        /// A field value, `name=value` (repeatable).
        #[arg(long = "field", value_parser = parse_field)]
        fields: Vec<(String, String)>,
    },
    /// Give an OAuth konnector's consent again (after
    /// USER_ACTION_NEEDED.OAUTH_OUTDATED): prints the consent URL, listens
    /// on 127.0.0.1, saves the new tokens and lifts the pause.
    Consent {
        /// The account: id, unique id prefix, or label.
        account: String,
        /// Only print the consent URL, do not try to open a browser.
        #[arg(long)]
        no_browser: bool,
        /// The loopback port of the redirect (default: any free port).
        #[arg(long, default_value_t = 0)]
        oauth_port: u16,
    },
    /// Pause an account's automatic runs (`gleaner run` still works).
    Pause {
        /// The account: id, unique id prefix, or label.
        account: String,
    },
    /// Resume an account's automatic runs at its next slot.
    Resume {
        /// The account: id, unique id prefix, or label.
        account: String,
    },
    /// Remove an account (its documents and files stay unless --purge).
    Remove {
        /// The account: id, unique id prefix, or label.
        account: String,
        /// Also delete its documents and files.
        #[arg(long)]
        purge: bool,
    },
}

/// How the daemon writes logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `gleaner tenants ...`
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Make a tenant: its row in the database and its data key, sealed by
    /// the installation's key, in the data directory.
    Add {
        /// Its name: lowercase letters, digits, `-` and `_`.
        name: String,
    },
    /// Each tenant, with its accounts and documents.
    List,
    /// Remove a tenant: every account, document, secret, job and file of
    /// it, and its data key, which is destroyed (its sealed records no
    /// longer open, even from a backup of the database).
    Remove {
        /// The tenant.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `gleaner vault ...`
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Which key source, where the key is, how many sealed records.
    Status,
    /// Re-encrypt every sealed record under a new key, atomically.
    Rotate {
        /// Move to a passphrase (from GLEANER_NEW_PASSPHRASE, or asked
        /// twice on the terminal).
        #[arg(long, conflicts_with = "to_keyfile")]
        to_passphrase: bool,
        /// Move to a random key in the key file.
        #[arg(long)]
        to_keyfile: bool,
    },
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not name=value"))
}
