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
    /// List the konnectors Gleaner knows.
    Konnectors,
    /// Add, list or remove accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Run an account's konnector once, now.
    Run {
        /// The account: its id, a unique id prefix, or its label.
        account: String,
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
    /// Write every stored document as JSON lines.
    Export {
        /// Only these doctypes (repeatable).
        #[arg(long = "doctype")]
        doctypes: Vec<String>,
        /// The file to write (default: standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Show or rotate the vault that seals credentials and sessions.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Start the bundled provider sandboxes on loopback, create demo
    /// accounts pointing at them, run them all and show what was imported.
    Demo,
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
        /// sandbox or a recording server on loopback).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// List accounts with their last sync.
    List,
    /// Remove an account (its documents and files stay unless --purge).
    Remove {
        /// The account: id, unique id prefix, or label.
        account: String,
        /// Also delete its documents and files.
        #[arg(long)]
        purge: bool,
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
