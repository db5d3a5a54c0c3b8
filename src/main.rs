//! The `gleaner` binary: thin glue over the framework, the konnectors and
//! (later) the scheduler. Not meant as a library.

mod accounts;
mod app;
mod cassettes;
mod cli;
mod commands;
mod dev;
mod installed;
mod linking;
mod migrate;
mod prompt;
mod scaffold;
mod scheduling;
mod signals;
mod tenants;
mod terminal;
mod web;

use std::process::ExitCode;

use clap::Parser;
use gleaner_framework::KonnectorError;
use tracing_subscriber::EnvFilter;

use cli::{
    AccountsCommand, Cli, Command, KonnectorsCommand, LogFormat, NewCommand, TenantsCommand,
    VaultCommand,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    let (is_daemon, json) = match &cli.command {
        Command::Daemon { log_format, .. } => (true, *log_format == LogFormat::Json),
        _ => (false, false),
    };
    // `gleaner dev`: trace logs of the gleaner crates, whatever -v says.
    let is_dev = matches!(cli.command, Command::Dev { .. });
    let filter = EnvFilter::try_from_env("GLEANER_LOG").unwrap_or_else(|_| {
        EnvFilter::new(match verbose {
            _ if is_dev => {
                "info,gleaner=trace,gleaner_framework=trace,gleaner_konnectors=trace,gleaner_sandbox_kit=debug"
            }
            0 if is_daemon => "info",
            // The command prints a run's error itself.
            0 => "warn,gleaner_framework::runner=error,gleaner_scheduler=error",
            1 => "info,gleaner=debug,gleaner_framework=debug,gleaner_konnectors=debug,gleaner_scheduler=debug",
            _ => "debug,gleaner=trace,gleaner_framework=trace,gleaner_konnectors=trace,gleaner_scheduler=trace",
        })
    });
    // headless_chrome logs every DevTools message at debug and trace, text
    // the browser typed included (a password it filled): never below info,
    // whatever GLEANER_LOG asks. The same for the websocket under it.
    let filter = ["headless_chrome=info", "tungstenite=info"]
        .into_iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, EnvFilter::add_directive);
    // Every log line (human or JSON) goes through the redacting writer.
    let writer = gleaner_framework::redact::RedactingWriter::new(std::io::stderr);
    let json = json || std::env::var("GLEANER_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        builder.init();
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
        // `gleaner export | head`: the reader left; not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let text = describe(&e, verbose);
            eprintln!("error: {}", gleaner_framework::redact::scrub(&text));
            ExitCode::FAILURE
        }
    }
}

/// One line for a person: the Cozy code and the cause, then (with -v) the
/// context chain, and last the next step when the command that failed
/// worded one ([`terminal::Next`]).
pub(crate) fn describe(e: &anyhow::Error, verbose: u8) -> String {
    let next = e.downcast_ref::<terminal::Next>();
    // The chain without the next step's own link.
    let links: Vec<&(dyn std::error::Error + 'static)> =
        e.chain().skip(usize::from(next.is_some())).collect();
    let konnector = links
        .iter()
        .find_map(|c| c.downcast_ref::<KonnectorError>());
    let outermost = links.first().map(ToString::to_string).unwrap_or_default();
    let mut out = match konnector {
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
        None => outermost.clone(),
    };
    // A context added around a konnector error (which job, what happens
    // next) goes on its own line.
    let outermost_is_konnector = links
        .first()
        .is_some_and(|c| c.downcast_ref::<KonnectorError>().is_some());
    if !outermost_is_konnector && konnector.is_some_and(|k| k.to_string() != outermost) {
        out.push_str(&format!("\n  ({outermost})"));
    }
    if verbose > 0 {
        for cause in links.iter().skip(1) {
            out.push_str(&format!("\n  caused by: {cause}"));
        }
    }
    if let Some(next) = next {
        out.push_str(&format!("\n  {next}"));
    }
    out
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // Scaffolding writes source files: no data directory, store or vault.
    if let Command::New(NewCommand::Konnector {
        slug,
        category,
        kind,
        root,
    }) = &cli.command
    {
        return new_konnector(slug, category, *kind, root.as_deref());
    }
    // A sandbox needs no installation: no store, no vault.
    if let Command::Sandbox {
        slug,
        scenario,
        port,
        json,
    } = cli.command
    {
        return commands::sandbox(commands::SandboxOptions {
            slug,
            scenario,
            port,
            json,
        })
        .await;
    }
    // A migration opens both ends itself.
    if let Command::Migrate { from, to } = &cli.command {
        return migrate::migrate(from, to).await;
    }
    if let Command::Serve {
        listen,
        no_daemon,
        passphrase,
        secure_cookies,
    } = cli.command
    {
        let passphrase = if passphrase {
            Some(ui_passphrase()?)
        } else {
            None
        };
        let app =
            std::sync::Arc::new(app::App::open(cli.data_dir, cli.database, cli.tenant).await?);
        let result = web::serve(
            std::sync::Arc::clone(&app),
            web::ServeOptions {
                listen,
                daemon: !no_daemon,
                passphrase,
                secure_cookies,
            },
        )
        .await;
        app.close().await;
        return result;
    }
    // Tenants are the installation's: their commands open it as a whole.
    if let Command::Tenants(command) = cli.command {
        if cli.tenant.is_some() {
            anyhow::bail!(
                "`gleaner tenants` manages the installation's tenants: give it no --tenant (GLEANER_TENANT)"
            );
        }
        let app = app::App::open(cli.data_dir, cli.database, None).await?;
        let result = match command {
            TenantsCommand::Add { name } => tenants::add(&app, &name).await,
            TenantsCommand::List => tenants::list(&app).await,
            TenantsCommand::Remove { name, yes } => tenants::remove(&app, &name, yes).await,
        };
        app.close().await;
        return result;
    }
    let app = app::App::open(cli.data_dir, cli.database, cli.tenant).await?;
    let result = run_command(&app, cli.command).await;
    // Closing the store checkpoints its WAL into the database file, so a
    // finished command leaves one whole file behind.
    app.close().await;
    result
}

/// The web interface's passphrase: GLEANER_UI_PASSPHRASE, else asked on
/// the terminal.
fn ui_passphrase() -> anyhow::Result<gleaner_framework::Secret> {
    let given = match std::env::var("GLEANER_UI_PASSPHRASE") {
        Ok(p) => p,
        Err(_) => rpassword::prompt_password("Passphrase for the web interface: ")?,
    };
    if given.chars().count() < 8 {
        anyhow::bail!("the web interface's passphrase must have at least 8 characters");
    }
    Ok(gleaner_framework::Secret::new(given))
}

/// `gleaner new konnector`: writes the files and prints them and the next
/// steps.
fn new_konnector(
    slug: &str,
    category: &str,
    kind: scaffold::Kind,
    root: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let root = match root {
        Some(root) => root.to_owned(),
        None => scaffold::find_root(&std::env::current_dir()?)?,
    };
    let created = scaffold::new_konnector(&root, slug, category, kind)?;
    println!(
        "Created the {kind} konnector `{slug}` ({}) in {}:",
        created.names.name,
        root.display()
    );
    for file in &created.files {
        println!("  {}", file.display());
    }
    println!("\n{}", scaffold::next_steps(&created, kind));
    Ok(())
}

async fn run_command(app: &app::App, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Konnectors { action } => match action {
            None | Some(KonnectorsCommand::List) => commands::konnectors(app),
            Some(KonnectorsCommand::Install {
                source,
                allow_hosts,
                any_host,
                timeout,
            }) => installed::install(app, &source, allow_hosts, any_host, timeout)?,
            Some(KonnectorsCommand::Remove { slug }) => installed::remove(app, &slug)?,
        },
        Command::Accounts(AccountsCommand::Add {
            slug,
            fields,
            label,
            endpoint,
            allow_remote_endpoint,
            no_browser,
            oauth_port,
        }) => {
            let consent = commands::Consent::Browser {
                open: !no_browser,
                port: oauth_port,
            };
            let account = commands::accounts_add(
                app,
                &slug,
                fields,
                label,
                (endpoint, allow_remote_endpoint),
                consent,
            )
            .await?;
            println!(
                "added account {} ({}) for {}; run it with `gleaner run {}`",
                account.label, account.id, account.konnector, account.label
            );
        }
        Command::Accounts(AccountsCommand::List) => commands::accounts_list(app).await?,
        Command::Accounts(AccountsCommand::Edit { account, fields }) => {
            commands::accounts_edit(app, &account, fields).await?;
        }
        Command::Accounts(AccountsCommand::Consent {
            account,
            no_browser,
            oauth_port,
        }) => {
            let consent = commands::Consent::Browser {
                open: !no_browser,
                port: oauth_port,
            };
            commands::accounts_consent(app, &account, consent).await?;
        }
        Command::Accounts(AccountsCommand::Pause { account }) => {
            let account = app.find_account(&account).await?;
            scheduling::set_paused(app, &account, true).await?;
        }
        Command::Accounts(AccountsCommand::Resume { account }) => {
            let account = app.find_account(&account).await?;
            scheduling::set_paused(app, &account, false).await?;
        }
        Command::Accounts(AccountsCommand::Remove { account, purge }) => {
            commands::accounts_remove(app, &account, purge).await?;
        }
        Command::Run {
            account,
            detach,
            record,
            replay,
        } => commands::run(app, &account, detach, record, replay).await?,
        Command::Daemon {
            concurrency,
            per_konnector,
            worker_id,
            ..
        } => scheduling::daemon(app, concurrency, per_konnector, worker_id).await?,
        Command::Schedule => scheduling::schedule(app).await?,
        Command::Jobs {
            account,
            failed,
            limit,
            json,
        } => scheduling::jobs(app, account.as_deref(), failed, limit, json).await?,
        Command::Status => scheduling::status(app).await?,
        Command::TwoFa { account, code } => {
            let account = app.find_account(&account).await?;
            scheduling::two_factor(app, &account, code).await?;
        }
        Command::Trigger {
            account,
            cron,
            auto,
        } => {
            let account = app.find_account(&account).await?;
            if cron.is_none() && !auto {
                anyhow::bail!("give --cron \"EXPR\" or --auto");
            }
            scheduling::trigger(app, &account, cron.as_deref()).await?;
        }
        Command::Docs {
            doctype,
            account,
            json,
            limit,
        } => commands::docs(app, &doctype, account.as_deref(), json, limit).await?,
        Command::Export { doctypes, out } => commands::export(app, doctypes, out).await?,
        Command::Demo => commands::demo(app).await?,
        Command::Link => linking::link_now(app).await?,
        Command::Dev { account } => dev::dev(app, &account).await?,
        // Normally handled in `dispatch`, before the installation is opened.
        Command::Sandbox {
            slug,
            scenario,
            port,
            json,
        } => {
            commands::sandbox(commands::SandboxOptions {
                slug,
                scenario,
                port,
                json,
            })
            .await?
        }
        Command::Migrate { .. } => {
            anyhow::bail!("`gleaner migrate` is handled before the data directory is opened")
        }
        Command::New(_) => {
            anyhow::bail!("`gleaner new` is handled before the data directory is opened")
        }
        Command::Serve { .. } => {
            anyhow::bail!("`gleaner serve` is handled before the installation is shared")
        }
        Command::Tenants(_) => {
            anyhow::bail!("`gleaner tenants` is handled before a tenant is chosen")
        }
        Command::Vault(VaultCommand::Status) => commands::vault_status(app).await?,
        Command::Vault(VaultCommand::Rotate {
            to_passphrase,
            to_keyfile,
        }) => commands::vault_rotate(app, to_passphrase, to_keyfile).await?,
    }
    Ok(())
}
