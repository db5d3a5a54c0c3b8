//! `gleaner konnectors install|remove`: Cozy Node konnectors installed into
//! the data directory (the work is `gleaner_cozy_host`'s; this words it for
//! a terminal and asks for the allow-list).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use gleaner_cozy_host::{InstallOptions, install};

use crate::app::App;

/// Installs a build, asking for the allow-list on a terminal when neither
/// `--allow-host` nor `--any-host` is given.
pub fn install(
    app: &App,
    source: &Path,
    allow_hosts: Vec<String>,
    any_host: bool,
    timeout: Option<u64>,
) -> Result<()> {
    let manifest = install::inspect(source)?;
    if let Some(existing) = app.registry.get(&manifest.slug).ok()
        && existing.origin == gleaner_konnectors::Origin::Builtin
    {
        bail!(
            "the slug `{}` is a built-in konnector's; a Cozy konnector cannot replace it",
            manifest.slug
        );
    }
    if timeout.is_some_and(|t| t == 0 || t > 6 * 3600) {
        bail!("--timeout must be between 1 and 21600 seconds");
    }
    let allow = if any_host {
        None
    } else if !allow_hosts.is_empty() {
        Some(allow_hosts)
    } else {
        Some(ask_allow_list(&manifest)?)
    };
    let installed = install::install(
        source,
        &app.data_dir,
        &InstallOptions {
            allow_hosts: allow.clone(),
            timeout_secs: timeout,
        },
    )?;
    // Refuse now what the registry would refuse at the next start.
    installed
        .manifest
        .to_gleaner(installed.record.timeout_secs)
        .map_err(|e| {
            let _ = install::uninstall(&app.data_dir, &installed.manifest.slug);
            anyhow::anyhow!("{}", e.message)
        })?;
    println!(
        "Installed the Cozy konnector `{}` ({} {}) in {}",
        installed.manifest.slug,
        installed.manifest.name,
        installed.manifest.version,
        installed.dir.display()
    );
    println!("  reaches: {}", installed.manifest.doctypes.join(", "));
    match &allow {
        Some(hosts) => println!("  may contact: {}", hosts.join(", ")),
        None => println!("  may contact: any host (each one is recorded in the run's log)"),
    }
    println!(
        "Add an account with: gleaner accounts add {}",
        installed.manifest.slug
    );
    Ok(())
}

fn ask_allow_list(manifest: &gleaner_cozy_host::CozyManifest) -> Result<Vec<String>> {
    let proposed: Vec<String> = manifest
        .vendor_link
        .as_deref()
        .and_then(|l| url::Url::parse(l).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
        .into_iter()
        .collect();
    if !std::io::stdin().is_terminal() {
        bail!(
            "say which hosts `{}` may contact: --allow-host HOST (repeatable; proposed: {}) or --any-host",
            manifest.slug,
            if proposed.is_empty() {
                "none".to_owned()
            } else {
                proposed.join(", ")
            }
        );
    }
    println!(
        "Which hosts may `{}` contact? Gleaner's proxy refuses the others.",
        manifest.slug
    );
    println!(
        "  Enter: {}",
        if proposed.is_empty() {
            "(no proposal)".to_owned()
        } else {
            proposed.join(", ")
        }
    );
    println!("  or type hosts separated by commas, or `any` for no list");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    let line = line.trim();
    if line.eq_ignore_ascii_case("any") {
        bail!("for no allow-list, install with --any-host");
    }
    let hosts: Vec<String> = if line.is_empty() {
        proposed
    } else {
        line.split(',')
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect()
    };
    if hosts.is_empty() {
        bail!("no host given: use --allow-host HOST or --any-host");
    }
    Ok(hosts)
}

/// Removes an installed konnector.
pub fn remove(app: &App, slug: &str) -> Result<()> {
    if install::uninstall(&app.data_dir, slug)? {
        println!("Removed the installed konnector `{slug}` (its accounts and documents stay)");
        Ok(())
    } else {
        bail!("no installed konnector `{slug}` (see gleaner konnectors)")
    }
}
