//! One function per command.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gleaner_framework::doctypes::AccountDoc;
use gleaner_framework::doctypes::accounts::AccountAuth;
use gleaner_framework::manifest::FieldSpec;
use gleaner_framework::store::Account;
use gleaner_framework::{RunReport, Secret};

use crate::accounts;
use crate::app::App;
use crate::terminal::{printable, table};

/// `gleaner konnectors`
pub fn konnectors(app: &App) {
    let mut t = table(&[
        "slug",
        "name",
        "category",
        "login",
        "2FA",
        "frequency",
        "produces",
        "hosts",
        "origin",
    ]);
    let mut entries: Vec<_> = app.registry.entries().iter().collect();
    entries.sort_by_key(|e| {
        let m = e.konnector.manifest();
        (m.category.to_string(), m.slug.clone())
    });
    for e in entries {
        let m = e.konnector.manifest();
        t.add_row(vec![
            m.slug.clone(),
            m.name.clone(),
            m.category.to_string(),
            m.login_kind().to_string(),
            m.two_factor.to_string(),
            format!("{:?}", m.frequency).to_lowercase(),
            m.data_types.join(", "),
            m.hosts.join(", "),
            match &e.origin {
                gleaner_konnectors::Origin::Builtin => "built in".to_owned(),
                gleaner_konnectors::Origin::Installed { kind, dir } => {
                    format!("{kind}, {}", dir.display())
                }
            },
        ]);
    }
    println!("{t}");
}

/// How an OAuth konnector's consent is given when its account is added.
pub enum Consent {
    /// A person in a browser: the URL is printed (and opened, with `open`).
    Browser {
        /// Try to open the URL in the desktop's browser.
        open: bool,
        /// The loopback port of the redirect (0: any).
        port: u16,
    },
    /// `gleaner demo`: the sandbox's consent page approves at once, so one
    /// HTTP GET that follows redirects plays the browser.
    #[cfg(feature = "sandboxes")]
    Auto,
}

/// Runs the OAuth consent for an account of `manifest` (authorization code
/// grant): loopback listener, consent URL, redirect check, code exchange.
/// Returns the redirect's fields and the tokens, not yet stored.
pub async fn oauth_consent(
    manifest: &gleaner_framework::Manifest,
    endpoint: Option<&str>,
    secrets: &BTreeMap<String, Secret>,
    consent: &Consent,
) -> Result<Option<(BTreeMap<String, String>, gleaner_framework::oauth::TokenSet)>> {
    use gleaner_framework::manifest::OAuthGrant;
    use gleaner_framework::oauth::{LoopbackRedirect, OAuthConfig, SystemClock, flow};
    let Some(spec) = &manifest.oauth else {
        return Ok(None);
    };
    if spec.grant != OAuthGrant::AuthorizationCode {
        // Client credentials: the first run fetches the token.
        return Ok(None);
    }
    let config = OAuthConfig::resolve(spec, endpoint, secrets)?;
    let port = match consent {
        Consent::Browser { port, .. } => *port,
        #[cfg(feature = "sandboxes")]
        Consent::Auto => 0,
    };
    let mut listener = LoopbackRedirect::bind(port).await?;
    let (url, pending) = flow::start(&config, &listener.redirect_uri(), Arc::new(SystemClock))?;
    // `gleaner demo` plays the browser with one GET; a person does not.
    let browser: Option<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>> = match consent
    {
        Consent::Browser { open, .. } => {
            println!(
                "Open this page to let {} share your data with Gleaner (valid {} minutes):\n{url}",
                manifest.name,
                flow::STATE_LIFETIME.num_minutes()
            );
            std::io::stdout().flush()?;
            if *open {
                open_browser(url.as_str());
            }
            None
        }
        #[cfg(feature = "sandboxes")]
        Consent::Auto => Some(tokio::spawn(async move {
            reqwest::get(url).await.and_then(|r| r.error_for_status())
        })),
    };
    let callback = listener.wait(&pending).await?;
    if let Some(task) = browser {
        task.await
            .context("the demo's browser stopped")?
            .context("the sandbox's consent page failed")?;
    }
    let tokens = pending.exchange(&callback).await?;
    Ok(Some((callback.fields, tokens)))
}

/// Best effort: the desktop's URL opener. The URL is printed anyway.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "no browser opener; open the URL by hand"),
    }
}

/// `gleaner accounts add`; a non-loopback `endpoint` needs `allow_remote`
/// (see `gleaner_framework::endpoint`). At a terminal, missing values are
/// asked for; without one, a missing required value is an error naming
/// the `--field` to give. The checks and the storing are
/// [`crate::accounts`]'s.
pub async fn accounts_add(
    app: &App,
    slug: &str,
    given: Vec<(String, String)>,
    label: Option<String>,
    (endpoint, allow_remote): (Option<String>, bool),
    consent: Consent,
) -> Result<Account> {
    let manifest = app.registry.get(slug)?.konnector.manifest().clone();
    let mut values: BTreeMap<String, String> = given.into_iter().collect();
    if let Some(unknown) = values.keys().find(|k| !manifest.fields.contains_key(*k)) {
        bail!(
            "konnector `{slug}` has no field `{unknown}`; its fields are: {}",
            accounts::field_names(&manifest)
        );
    }
    let terminal = std::io::stdin().is_terminal();
    // Refused before anything is asked.
    if let Some(url) = &endpoint
        && let Err(e) = gleaner_framework::endpoint::check_endpoint(url, allow_remote)
    {
        bail!("{}", endpoint_refusal(url, &e.message));
    }
    for (name, spec) in &manifest.fields {
        if values.contains_key(name) {
            continue;
        }
        // An optional field is asked for only at a terminal; a script
        // gives it with --field or goes without.
        if spec.required || terminal {
            values.insert(name.clone(), prompt(name, spec)?);
        }
    }
    let checked = accounts::check_new(
        app,
        accounts::NewAccount {
            slug: slug.to_owned(),
            values,
            label,
            endpoint,
            allow_remote_endpoint: allow_remote,
        },
    )
    .await?
    .map_err(|refusals| anyhow::anyhow!(word_refusals(&refusals)))?;
    let tokens = oauth_consent(&manifest, checked.endpoint(), checked.secrets(), &consent).await?;
    accounts::create(app, checked, tokens).await.map_err(|e| {
        let taken = e.chain().any(|c| c.to_string().contains("exists already"));
        if taken {
            e.context("pick another label with --label")
        } else {
            e
        }
    })
}

/// Refusals worded for the terminal: one per line, the flag to use where
/// one helps.
fn word_refusals(refusals: &[accounts::FieldError]) -> String {
    refusals
        .iter()
        .map(|r| match r.field.as_str() {
            "label" if r.message.contains("exists already") => {
                format!("{}; pick another with --label", r.message)
            }
            "endpoint" => format!("--endpoint refused: {}", r.message),
            _ => r.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// `--endpoint` refused, with the flag that confirms a remote one when
/// that is all it lacks.
fn endpoint_refusal(url: &str, why: &str) -> String {
    let step = if accounts::needs_remote_confirmation(url) {
        "; add --allow-remote-endpoint to confirm"
    } else {
        ""
    };
    format!("--endpoint refused: {why}{step}")
}

/// A value asked for at the terminal; without one, an error naming the
/// `--field` to give.
fn prompt(name: &str, spec: &FieldSpec) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "field `{name}` ({}) is missing: give it with --field {name}=...",
            spec.label
        );
    }
    let question = format!(
        "{}{}: ",
        spec.label,
        if spec.required { "" } else { " (optional)" }
    );
    if spec.kind.is_secret() {
        Ok(rpassword::prompt_password(question)?)
    } else {
        eprint!("{question}");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim().to_owned())
    }
}

/// `gleaner accounts edit`: changes fields (secrets included) of an
/// account; the scheduler's pause after a credentials error is lifted. An
/// empty secret (`--field password=`) is asked for at the terminal.
pub async fn accounts_edit(app: &App, what: &str, given: Vec<(String, String)>) -> Result<()> {
    let account = app.find_account(what).await?;
    let manifest = app
        .registry
        .get(&account.konnector)?
        .konnector
        .manifest()
        .clone();
    if given.is_empty() {
        bail!(
            "nothing to change: give --field name=value (fields of {}: {})",
            manifest.slug,
            accounts::field_names(&manifest)
        );
    }
    let mut values = BTreeMap::new();
    for (name, value) in given {
        let spec = manifest
            .fields
            .get(&name)
            .with_context(|| format!("konnector `{}` has no field `{name}`", manifest.slug))?;
        let value = if value.is_empty() && spec.kind.is_secret() {
            prompt(&name, spec)?
        } else {
            value
        };
        values.insert(name, value);
    }
    let changed = accounts::update(app, &account, values)
        .await?
        .map_err(|refusals| anyhow::anyhow!(word_refusals(&refusals)))?;
    println!(
        "updated {} of {}; automatic runs go on at its next slot",
        changed.join(", "),
        printable(&account.label)
    );
    Ok(())
}

/// `gleaner accounts consent <account>`: gives an OAuth konnector's
/// consent again (after `USER_ACTION_NEEDED.OAUTH_OUTDATED`), saves the new
/// tokens and lifts the account's pause.
pub async fn accounts_consent(app: &App, what: &str, consent: Consent) -> Result<()> {
    let mut account = app.find_account(what).await?;
    let manifest = app
        .registry
        .get(&account.konnector)?
        .konnector
        .manifest()
        .clone();
    let secrets = app.secrets(&account).await?;
    let Some((fields, tokens)) =
        oauth_consent(&manifest, account.endpoint.as_deref(), &secrets, &consent).await?
    else {
        bail!(
            "{} ({}) asks for no consent in a browser: its credentials are its fields; change them with `gleaner accounts edit {}`",
            printable(&account.label),
            manifest.name,
            printable(&account.label)
        );
    };
    // The redirect may name other resources (another meter) this time.
    if fields.iter().any(|(k, v)| account.fields.get(k) != Some(v)) {
        account.fields.extend(fields);
        app.store.put_account(&account).await?;
    }
    accounts::save_consent(app, &account, &tokens).await?;
    println!(
        "consent given again for {}; automatic runs go on at its next slot",
        printable(&account.label)
    );
    Ok(())
}

/// `gleaner accounts list`
pub async fn accounts_list(app: &App) -> Result<()> {
    let mut t = table(&[
        "id",
        "konnector",
        "label",
        "folder",
        "endpoint",
        "last sync",
    ]);
    for a in app.store.list_accounts().await? {
        let last = app
            .store
            .state(&a.id)
            .await?
            .map(|s| s.last_sync.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into());
        t.add_row(vec![
            a.id.clone(),
            a.konnector.clone(),
            printable(&a.label),
            printable(&a.folder),
            printable(a.endpoint.as_deref().unwrap_or_default()),
            last,
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `gleaner accounts remove`
pub async fn accounts_remove(app: &App, what: &str, purge: bool) -> Result<()> {
    let account = app.find_account(what).await?;
    let links = accounts::remove_with_links(app, &account, purge).await?;
    let label = printable(&account.label);
    if purge {
        println!(
            "removed account {label} ({}) with its documents and files",
            account.id
        );
        if let Some(s) = links
            && s.changed() > 0
        {
            println!(
                "bank links updated after the removal: {} link(s) now ({} operation(s) and {} bill(s) updated)",
                s.links, s.operations_changed, s.bills_changed
            );
        }
    } else {
        println!(
            "removed account {label} ({}); its documents and files are kept",
            account.id
        );
    }
    Ok(())
}

/// Runs one account now with a progress bar, as a recorded manual job;
/// returns the report.
pub async fn run_account(app: &App, account: &Account) -> Result<RunReport> {
    app.registry.get(&account.konnector)?;
    crate::scheduling::run_job(app, account, None).await
}

/// Prints a run's summary table.
pub fn print_report(label: &str, report: &RunReport) {
    let label = printable(label);
    let mut t = table(&["doctype", "created", "updated", "skipped"]);
    for (doctype, c) in &report.counts {
        t.add_row(vec![
            doctype.clone(),
            c.created.to_string(),
            c.updated.to_string(),
            c.skipped.to_string(),
        ]);
    }
    println!(
        "{label}: run {} finished in {:.1} s ({} requests, {} retries, {} files downloaded, {} already there)",
        &report.run_id[..8],
        (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0,
        report.requests,
        report.retries,
        report.files_downloaded,
        report.files_reused
    );
    println!("{t}");
    if let Some(line) = report.links.as_ref().and_then(crate::linking::report_line) {
        println!("{line}");
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
}

/// `gleaner run`
pub async fn run(
    app: &App,
    what: &str,
    detach: bool,
    record: Option<PathBuf>,
    replay: Option<PathBuf>,
) -> Result<()> {
    let account = app.find_account(what).await?;
    if detach {
        return crate::scheduling::enqueue(app, &account).await;
    }
    if let Some(source) = replay {
        return crate::cassettes::replay(app, &account, &source).await;
    }
    let Some(dir) = record else {
        let report = run_account(app, &account).await?;
        print_report(&account.label, &report);
        return Ok(());
    };
    app.registry.get(&account.konnector)?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the cassette directory {}", dir.display()))?;
    let mode = gleaner_framework::CassetteMode::Record(dir.clone());
    let result = crate::scheduling::run_job(app, &account, Some(mode)).await;
    // Written at the end of the run, failed runs included.
    if let Ok(path) = gleaner_framework::cassette::Cassette::find(&dir, &account.konnector) {
        println!("cassette: {}", path.display());
    }
    let report = result?;
    print_report(&account.label, &report);
    Ok(())
}

/// `gleaner docs`
pub async fn docs(
    app: &App,
    doctype: &str,
    account: Option<&str>,
    json: bool,
    limit: u32,
) -> Result<()> {
    let account_id = match account {
        Some(a) => Some(app.find_account(a).await?.id),
        None => None,
    };
    let docs = app
        .store
        .list(doctype, account_id.as_deref(), None, limit)
        .await?;
    let linked = crate::linking::linked_bills(app, doctype, &docs).await?;
    let total = match &account_id {
        None => app
            .store
            .count_by_doctype()
            .await?
            .get(doctype)
            .copied()
            .unwrap_or(0),
        // One account: count by paging (no per-account count query).
        Some(id) => count_docs(app, doctype, id).await?,
    };
    if json {
        for d in &docs {
            println!("{}", d.data);
        }
        return Ok(());
    }
    let s = |v: &serde_json::Value, k: &str| match &v[k] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut t = match doctype {
        "io.cozy.bills" => table(&["date", "vendor", "amount", "contract", "file"]),
        "io.cozy.files" => table(&["path", "size", "sha256"]),
        "io.cozy.bank.operations" => table(&crate::linking::OPERATIONS_HEADER),
        _ => table(&["id", "document"]),
    };
    for d in &docs {
        let v = &d.data;
        t.add_row(match doctype {
            "io.cozy.bills" => vec![
                s(v, "date").get(..10).unwrap_or_default().to_owned(),
                s(v, "vendor"),
                format!("{} {}", s(v, "amount"), s(v, "currency")),
                s(v, "contractLabel"),
                s(v, "filename"),
            ],
            "io.cozy.files" => vec![
                s(v, "path"),
                s(v, "size"),
                s(v, "sha256").chars().take(16).collect(),
            ],
            "io.cozy.bank.operations" => crate::linking::operation_row(v, &linked),
            _ => vec![d.id.clone(), v.to_string().chars().take(120).collect()],
        });
    }
    println!("{t}");
    if (docs.len() as u64) < total {
        println!(
            "{} of {total} document(s) of {doctype}; see more with --limit {total}, or all with `gleaner export`",
            docs.len()
        );
    } else {
        println!("{} document(s) of {doctype}", docs.len());
    }
    Ok(())
}

/// How many documents of `doctype` an account has.
async fn count_docs(app: &App, doctype: &str, account_id: &str) -> Result<u64> {
    let mut n = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = app
            .store
            .list(doctype, Some(account_id), after.as_deref(), 1000)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        n += page.len() as u64;
    }
    Ok(n)
}

/// `gleaner export`
pub async fn export(
    app: &App,
    doctypes: Vec<String>,
    out: Option<std::path::PathBuf>,
) -> Result<()> {
    let all = doctypes.is_empty();
    let with_accounts = all || doctypes.iter().any(|d| d == "io.cozy.accounts");
    let doctypes: Vec<String> = if all {
        app.store.count_by_doctype().await?.into_keys().collect()
    } else {
        doctypes
            .into_iter()
            .filter(|d| d != "io.cozy.accounts")
            .collect()
    };
    // With --out, lines go to a temporary file beside the target, renamed
    // over it only once all of them are written and synced: a full disk or
    // a damaged store leaves the previous file whole (the temporary file is
    // removed when dropped on error).
    let mut temp = match &out {
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => std::path::PathBuf::from("."),
            };
            Some(
                tempfile::Builder::new()
                    .prefix(".gleaner-export-")
                    .tempfile_in(&dir)
                    .with_context(|| format!("cannot write in {}", dir.display()))?,
            )
        }
        None => None,
    };
    let mut sink: Box<dyn Write> = match &mut temp {
        Some(file) => Box::new(std::io::BufWriter::new(file.as_file_mut())),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut n = 0u64;
    for doctype in &doctypes {
        let mut after: Option<String> = None;
        loop {
            let page = app
                .store
                .list(doctype, None, after.as_deref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for d in &page {
                let line = serde_json::json!({"doctype": doctype, "doc": d.data});
                writeln!(sink, "{line}")?;
                n += 1;
            }
        }
    }
    if with_accounts {
        for a in app.store.list_accounts().await? {
            let manifest = app.registry.get(&a.konnector)?.konnector.manifest();
            let login = manifest
                .identifier_field()
                .and_then(|f| a.fields.get(f).cloned());
            let state = app.store.state(&a.id).await?;
            let doc = AccountDoc {
                id: a.id.clone(),
                account_type: a.konnector.clone(),
                auth: AccountAuth { login },
                data: state.map(|s| s.state).unwrap_or_default(),
                state: None,
            };
            writeln!(
                sink,
                "{}",
                serde_json::json!({"doctype": "io.cozy.accounts", "doc": doc})
            )?;
            n += 1;
        }
    }
    sink.flush()?;
    drop(sink);
    if let (Some(temp), Some(path)) = (temp, &out) {
        temp.as_file()
            .sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
        temp.persist(path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        eprintln!("exported {n} document(s) to {}", path.display());
    }
    Ok(())
}

/// What `demo` and `sandbox` say in a build without the `sandboxes` feature.
#[cfg(not(feature = "sandboxes"))]
const NO_SANDBOXES: &str = "this build of gleaner has no sandboxes (it was built without the `sandboxes` feature, as production builds are); build with default features for `gleaner demo` and `gleaner sandbox`";

/// `gleaner demo` in a build without sandboxes.
#[cfg(not(feature = "sandboxes"))]
pub async fn demo(_app: &App) -> Result<()> {
    bail!(NO_SANDBOXES)
}

/// `gleaner sandbox` in a build without sandboxes.
#[cfg(not(feature = "sandboxes"))]
pub async fn sandbox(_options: SandboxOptions) -> Result<()> {
    bail!(NO_SANDBOXES)
}

/// What `gleaner sandbox` was asked for.
#[cfg_attr(not(feature = "sandboxes"), allow(dead_code))]
pub struct SandboxOptions {
    /// The konnector's slug.
    pub slug: String,
    /// The scenario (default: the sandbox's first, `normal`).
    pub scenario: Option<String>,
    /// The port on 127.0.0.1 (default or 0: any free port).
    pub port: Option<u16>,
    /// One JSON line instead of text.
    pub json: bool,
}

/// `gleaner sandbox`: one konnector's sandbox in the foreground until
/// SIGINT (Ctrl-C) or SIGTERM. Prints its URL, the demo credentials that
/// log in to it (printing them is the point) and its scenarios.
#[cfg(feature = "sandboxes")]
pub async fn sandbox(options: SandboxOptions) -> Result<()> {
    use gleaner_sandbox_kit::StartOptions;
    let registry = gleaner_konnectors::Registry::builtin()?;
    let entry = registry.get(&options.slug)?;
    let manifest = entry.konnector.manifest();
    let Some(def) = entry.sandbox else {
        let with: Vec<_> = registry
            .entries()
            .iter()
            .filter(|e| e.sandbox.is_some())
            .map(|e| e.konnector.manifest().slug.as_str())
            .collect();
        bail!(
            "{} has no sandbox; the konnectors with one are: {}",
            options.slug,
            with.join(", ")
        );
    };
    if let Some(name) = &options.scenario
        && def.scenario(name).is_none()
    {
        bail!(
            "the {} sandbox has no scenario `{name}`; its scenarios are: {}",
            options.slug,
            def.scenario_names().join(", ")
        );
    }
    let port = options.port.filter(|p| *p != 0);
    let stopped = crate::signals::stop_signal()?;
    let running = def
        .launch(StartOptions {
            scenario: options.scenario.clone(),
            port,
        })
        .await
        .map_err(|e| match (e.kind(), port) {
            (std::io::ErrorKind::AddrInUse, Some(p)) => anyhow::anyhow!(
                "port {p} on 127.0.0.1 is already in use; choose another with --port, or --port 0 for any free one"
            ),
            _ => anyhow::Error::new(e)
                .context(format!("cannot start the {} sandbox", manifest.name)),
        })?;
    let mut fields = serde_json::Map::new();
    for (name, value) in running.fields.iter().chain(&running.secrets) {
        fields.insert(name.clone(), serde_json::Value::String(value.clone()));
    }
    let mut out = std::io::stdout().lock();
    if options.json {
        let line = serde_json::json!({
            "url": running.base_url,
            "fields": fields,
            "scenarios": def.scenario_names(),
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "{} sandbox (scenario {}) listening on {}",
            manifest.name, running.scenario, running.base_url
        )?;
        if !fields.is_empty() {
            writeln!(out, "demo credentials that log in to it:")?;
            for (name, value) in running.fields.iter().chain(&running.secrets) {
                writeln!(out, "  {name} = {value}")?;
            }
        }
        writeln!(out, "scenarios (--scenario NAME):")?;
        for s in def.scenarios {
            writeln!(out, "  {:<16} {}", s.name, s.about)?;
        }
        let mut add = format!(
            "gleaner accounts add {} --endpoint {}",
            options.slug, running.base_url
        );
        for (name, value) in running.fields.iter().chain(&running.secrets) {
            add.push_str(&format!(" --field {name}={value}"));
        }
        writeln!(out, "add an account against it:\n  {add}")?;
        writeln!(out, "press Ctrl-C to stop")?;
    }
    out.flush()?;
    drop(out);
    stopped.await?;
    tracing::info!("stopping the sandbox");
    drop(running);
    Ok(())
}

/// `gleaner demo`
#[cfg(feature = "sandboxes")]
pub async fn demo(app: &App) -> Result<()> {
    println!("Gleaner demo: data in {}", app.data_dir.display());
    // One demo at a time per data directory: a second one waits for the
    // first, then finds its accounts (the OS lock goes with the process).
    let _lock = lock_file(&app.data_dir.join("demo.lock")).await?;
    let started = std::time::Instant::now();
    let links_before = app.store.link_count().await?;
    let mut runs = DemoTotals::default();
    for entry in app.registry.entries() {
        let Some(def) = entry.sandbox else { continue };
        let manifest = entry.konnector.manifest();
        if manifest.login_kind() == gleaner_framework::manifest::LoginKind::Browser {
            let chromium = gleaner_framework::browser::chromium_path();
            if !chromium.exists() {
                // Outside CI the demo runs what it can, saying what it left
                // out; CI has chromium (`.ci/run` installs it).
                if std::env::var_os("CI").is_some() {
                    bail!(
                        "the {} konnector logs in with a browser and CI needs chromium at {} (apt-get install -y chromium)",
                        manifest.name,
                        chromium.display()
                    );
                }
                println!(
                    "demo-{}: skipped: chromium not found at {} (apt-get install -y chromium, or set GLEANER_CHROMIUM)",
                    manifest.slug,
                    chromium.display()
                );
                continue;
            }
        }
        let sandbox = def
            .launch(gleaner_sandbox_kit::StartOptions::default())
            .await
            .with_context(|| format!("cannot start the {} sandbox", manifest.name))?;
        let label = format!("demo-{}", manifest.slug);
        let existing = app
            .store
            .list_accounts()
            .await?
            .into_iter()
            .find(|a| a.label == label);
        let account = match existing {
            Some(mut a) => {
                // The sandbox listens on a new port each time.
                a.endpoint = Some(sandbox.base_url.clone());
                // And a new sandbox knows no earlier OAuth token: consent
                // again (its consent page approves at once).
                let secrets = app.secrets(&a).await?;
                if let Some((fields, tokens)) =
                    oauth_consent(manifest, a.endpoint.as_deref(), &secrets, &Consent::Auto).await?
                {
                    a.fields.extend(fields);
                    app.oauth().await?.save(&a.id, &tokens).await?;
                }
                app.store.put_account(&a).await?;
                a
            }
            None => {
                let mut fields = sandbox.fields.clone();
                fields.extend(sandbox.secrets.clone());
                accounts_add(
                    app,
                    &manifest.slug,
                    fields,
                    Some(label.clone()),
                    (Some(sandbox.base_url.clone()), false),
                    Consent::Auto,
                )
                .await?
            }
        };
        let result = run_account(app, &account).await;
        drop(sandbox);
        runs.add(&label, &manifest.name, result);
    }
    crate::linking::print_demo_links(app).await?;
    let links_after = app.store.link_count().await?;
    let counts = app.store.count_by_doctype().await?;
    runs.print_summary(
        &counts,
        (links_before, links_after),
        started.elapsed().as_secs_f64(),
    );
    println!("store: {}", app.store.describe());
    println!("files: {}", app.files_root().display());
    println!("see them with `gleaner docs io.cozy.bills` or `gleaner export`");
    if !runs.errors.is_empty() {
        bail!("{} demo run(s) failed", runs.errors.len());
    }
    Ok(())
}

/// This process's peak resident memory in MiB (`VmHWM`), where Linux
/// tells it.
#[cfg(feature = "sandboxes")]
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What the demo's runs did, added up for its one summary.
#[cfg(feature = "sandboxes")]
#[derive(Default)]
struct DemoTotals {
    /// The accounts run, in order.
    accounts: Vec<String>,
    /// Created, updated, skipped by doctype, over every run.
    counts: BTreeMap<String, (u64, u64, u64)>,
    /// Files downloaded, and files found already there.
    files: (u64, u64),
    /// The failed runs: account label and the error, worded.
    errors: Vec<(String, String)>,
}

#[cfg(feature = "sandboxes")]
impl DemoTotals {
    /// Adds a run and prints its one line.
    fn add(&mut self, label: &str, name: &str, result: Result<RunReport>) {
        self.accounts.push(label.to_owned());
        match result {
            Ok(report) => {
                for (doctype, c) in &report.counts {
                    let e = self.counts.entry(doctype.clone()).or_default();
                    e.0 += c.created;
                    e.1 += c.updated;
                    e.2 += c.skipped;
                }
                self.files.0 += report.files_downloaded;
                self.files.1 += report.files_reused;
                println!(
                    "{label} ({name}): ok in {:.1} s, {} created, {} requests, {} files downloaded, {} already there",
                    (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0,
                    report.created(),
                    report.requests,
                    report.files_downloaded,
                    report.files_reused
                );
                for w in &report.warnings {
                    println!("  warning: {}", printable(w));
                }
            }
            Err(e) => {
                let why = crate::describe(&e, 0);
                eprintln!("{label} ({name}): failed: {why}");
                self.errors.push((label.to_owned(), why));
            }
        }
    }

    /// The demo's last words: accounts, documents per doctype, files,
    /// links, errors and time.
    fn print_summary(&self, in_store: &BTreeMap<String, u64>, links: (u64, u64), seconds: f64) {
        let memory = peak_rss_mib()
            .map(|m| format!(", peak memory {m:.0} MiB (this process; a browser's are its own)"))
            .unwrap_or_default();
        println!(
            "== demo summary: {} konnectors run in {seconds:.1} s{memory}",
            self.accounts.len()
        );
        println!("accounts: {}", self.accounts.join(", "));
        let mut t = table(&["doctype", "in store", "created", "updated", "skipped"]);
        for (doctype, n) in in_store {
            let (c, u, s) = self.counts.get(doctype).copied().unwrap_or_default();
            t.add_row(vec![
                doctype.clone(),
                n.to_string(),
                c.to_string(),
                u.to_string(),
                s.to_string(),
            ]);
        }
        println!("{t}");
        println!(
            "files: {} downloaded, {} already there",
            self.files.0, self.files.1
        );
        println!(
            "bank links: {} in the store, {} made by this demo",
            links.1,
            links.1.saturating_sub(links.0)
        );
        if self.errors.is_empty() {
            println!("errors: none");
        } else {
            println!("errors: {}", self.errors.len());
            for (label, why) in &self.errors {
                println!("  {label}: {why}");
            }
        }
    }
}

/// Takes an exclusive lock on `path` (created 0600), waiting for another
/// process that holds it. Released when the file is dropped.
#[cfg(feature = "sandboxes")]
async fn lock_file(path: &std::path::Path) -> Result<std::fs::File> {
    let file = gleaner_framework::store::files::create_private_file_keep(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .context("the lock task stopped")?
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// `gleaner vault status`
pub async fn vault_status(app: &App) -> Result<()> {
    // The records this tenant's vault sealed (on SQLite, every record).
    let counts = match app.postgres() {
        Some(pg) => {
            pg.with_tenant(app.tenant.clone())
                .tenant_sealed_counts()
                .await?
        }
        None => app.store.sealed_counts().await?,
    };
    let vault = app.vault().await?;
    if !app.tenant.is_default() {
        println!("tenant:     {}", app.tenant);
    }
    println!("key source: {}", vault.source());
    println!("key:        {}", vault.key_path().display());
    println!("key id:     {}", vault.key_id());
    let mut t = table(&["table", "sealed records"]);
    for (table, n) in &counts {
        t.add_row(vec![table.clone(), n.to_string()]);
    }
    println!("{t}");
    println!("{} sealed record(s)", counts.values().sum::<u64>());
    Ok(())
}

/// `gleaner vault rotate`
pub async fn vault_rotate(app: &App, to_passphrase: bool, to_keyfile: bool) -> Result<()> {
    use gleaner_framework::vault::envelope::TenantKeys;
    use gleaner_framework::vault::{self, KdfParams, KeySource, RotationTarget, VaultLocation};
    if !app.tenant.is_default() {
        bail!(
            "the vault's key is the installation's: rotate it without --tenant (the tenants' data keys are re-sealed with it)"
        );
    }
    let current = app.installation_vault().await?;
    let passphrase_target =
        to_passphrase || (!to_keyfile && current.source() == KeySource::Passphrase);
    let target = if passphrase_target {
        RotationTarget::Passphrase(new_passphrase()?, KdfParams::LAPTOP)
    } else {
        RotationTarget::KeyFile
    };
    let loc = VaultLocation::new(&app.data_dir);
    let keys = TenantKeys::new(&app.data_dir);
    let (new, counts) = vault::rotate_with_tenants(
        &loc,
        &*app.installation_store(),
        &current,
        target,
        Some(&keys),
    )
    .await?;
    println!(
        "vault rotated: {} record(s) re-sealed ({}); key source {} at {}, key id {} (was {})",
        counts.values().sum::<u64>(),
        counts
            .iter()
            .map(|(t, n)| format!("{t}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        new.source(),
        new.key_path().display(),
        new.key_id(),
        current.key_id()
    );
    Ok(())
}

/// The new passphrase: GLEANER_NEW_PASSPHRASE, or asked twice.
fn new_passphrase() -> Result<Secret> {
    if let Ok(p) = std::env::var("GLEANER_NEW_PASSPHRASE")
        && !p.is_empty()
    {
        return Ok(Secret::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("give the new passphrase in GLEANER_NEW_PASSPHRASE or run from a terminal");
    }
    let first = Secret::new(rpassword::prompt_password("New vault passphrase: ")?);
    let second = Secret::new(rpassword::prompt_password("Again: ")?);
    if first.expose() != second.expose() {
        bail!("the two passphrases differ; nothing changed");
    }
    if first.expose().chars().count() < 8 {
        bail!("the passphrase is shorter than 8 characters; nothing changed");
    }
    Ok(first)
}
