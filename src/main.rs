//! The `gleaner` binary: thin glue over the framework, the konnectors and
//! (later) the scheduler. Not meant as a library.

mod app;
mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use gleaner_framework::KonnectorError;
use tracing_subscriber::EnvFilter;

use cli::{AccountsCommand, Cli, Command, VaultCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    let filter = EnvFilter::try_from_env("GLEANER_LOG").unwrap_or_else(|_| {
        EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info,gleaner=debug,gleaner_framework=debug,gleaner_konnectors=debug",
            _ => "debug,gleaner=trace,gleaner_framework=trace,gleaner_konnectors=trace",
        })
    });
    // Every log line (human or JSON) goes through the redacting writer.
    let writer = gleaner_framework::redact::RedactingWriter::new(std::io::stderr);
    if std::env::var("GLEANER_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(writer)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = describe(&e, verbose);
            eprintln!("error: {}", gleaner_framework::redact::scrub(&text));
            ExitCode::FAILURE
        }
    }
}

/// One line for a person: the Cozy code and the cause, then (with -v) the
/// context chain.
pub(crate) fn describe(e: &anyhow::Error, verbose: u8) -> String {
    let mut out = match e.chain().find_map(|c| c.downcast_ref::<KonnectorError>()) {
        Some(k) => {
            let mut s = format!("{}: {}", k.code, k.message);
            if let Some(after) = k.retry_after {
                s.push_str(&format!(
                    " (the provider asked to retry in {} s)",
                    after.as_secs()
                ));
            }
            s
        }
        None => e.to_string(),
    };
    if verbose > 0 {
        for cause in e.chain().skip(1) {
            out.push_str(&format!("\n  caused by: {cause}"));
        }
    }
    out
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let app = app::App::open(cli.data_dir).await?;
    match cli.command {
        Command::Konnectors => commands::konnectors(&app),
        Command::Accounts(AccountsCommand::Add {
            slug,
            fields,
            label,
            endpoint,
        }) => {
            let account = commands::accounts_add(&app, &slug, fields, label, endpoint).await?;
            println!(
                "added account {} ({}) for {}; run it with `gleaner run {}`",
                account.label, account.id, account.konnector, account.label
            );
        }
        Command::Accounts(AccountsCommand::List) => commands::accounts_list(&app).await?,
        Command::Accounts(AccountsCommand::Remove { account, purge }) => {
            commands::accounts_remove(&app, &account, purge).await?;
        }
        Command::Run { account } => commands::run(&app, &account).await?,
        Command::Docs {
            doctype,
            account,
            json,
            limit,
        } => commands::docs(&app, &doctype, account.as_deref(), json, limit).await?,
        Command::Export { doctypes, out } => commands::export(&app, doctypes, out).await?,
        Command::Demo => commands::demo(&app).await?,
        Command::Vault(VaultCommand::Status) => commands::vault_status(&app).await?,
        Command::Vault(VaultCommand::Rotate {
            to_passphrase,
            to_keyfile,
        }) => commands::vault_rotate(&app, to_passphrase, to_keyfile).await?,
    }
    Ok(())
}
