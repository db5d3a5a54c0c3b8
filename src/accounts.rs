//! Account operations without a terminal: create, edit and remove accounts
//! from values a person gave (a command line, a web form). Nothing here
//! prompts or prints; refusals come back as [`FieldError`]s, one per field,
//! for the caller to word (`commands.rs` for the terminal).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::Utc;
use gleaner_framework::endpoint::check_endpoint;
use gleaner_framework::oauth::TokenSet;
use gleaner_framework::store::{Account, LinkSummary};
use gleaner_framework::{Manifest, Secret};

use crate::app::App;

/// One field's refusal, for a form to show beside the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name in the manifest, or `label` / `endpoint`.
    pub field: String,
    /// Why it was refused, a sentence naming the field (never its value).
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// A new account as a person gave it (every value as typed; secrets included).
pub struct NewAccount {
    /// The konnector's slug.
    pub slug: String,
    /// The manifest's fields by name, secrets included, as typed.
    pub values: BTreeMap<String, String>,
    /// The label; default: the identifier field's value, else
    /// `<slug>-<id prefix>`.
    pub label: Option<String>,
    /// A base URL replacing the provider's (a sandbox, a recording server).
    pub endpoint: Option<String>,
    /// The person confirmed an endpoint that is not on this machine.
    pub allow_remote_endpoint: bool,
}

/// A checked new account: fields split from secrets, label chosen, id drawn.
pub struct CheckedAccount {
    id: String,
    slug: String,
    label: String,
    fields: BTreeMap<String, String>,
    secrets: BTreeMap<String, Secret>,
    endpoint: Option<String>,
    /// The konnector's name, for the account's files folder.
    name: String,
}

// `id`, `slug` and `label` are for the web UI's confirmation page
// (`src/web/`); the CLI needs only the endpoint and the secrets.
#[allow(dead_code)]
impl CheckedAccount {
    /// The id the account will have.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The konnector's slug.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The label chosen (given, or the identifier, or `<slug>-<id prefix>`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The endpoint, if one was given.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The secret fields (what an OAuth consent may need, such as a client
    /// secret).
    pub fn secrets(&self) -> &BTreeMap<String, Secret> {
        &self.secrets
    }
}

/// The manifest of a konnector of the registry (an unknown slug is an
/// error, `UNKNOWN_ERROR.KONNECTOR_NOT_FOUND`, not a field's refusal).
fn manifest(app: &App, slug: &str) -> Result<Manifest> {
    Ok(app.registry.get(slug)?.konnector.manifest().clone())
}

/// Whether an endpoint is refused only for want of the person's
/// confirmation (a remote host, not a forbidden one).
pub fn needs_remote_confirmation(endpoint: &str) -> bool {
    check_endpoint(endpoint, false).is_err() && check_endpoint(endpoint, true).is_ok()
}

/// Checks every field against the manifest (required, pattern, length), the label (valid, not taken),
/// the endpoint (loopback, or remote with the confirmation). All refusals at once, each naming its
/// field ("label", "endpoint" for those two). Missing required values are refusals, never prompts.
pub async fn check_new(
    app: &App,
    new: NewAccount,
) -> Result<Result<CheckedAccount, Vec<FieldError>>> {
    let manifest = manifest(app, &new.slug)?;
    let mut refusals = Vec::new();
    for name in new.values.keys() {
        if !manifest.fields.contains_key(name) {
            refusals.push(FieldError::new(
                name,
                format!(
                    "konnector `{}` has no field `{name}`; its fields are: {}",
                    manifest.slug,
                    field_names(&manifest)
                ),
            ));
        }
    }
    if let Some(url) = &new.endpoint
        && let Err(e) = check_endpoint(url, new.allow_remote_endpoint)
    {
        refusals.push(FieldError::new("endpoint", e.message));
    }
    let mut fields = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for (name, spec) in &manifest.fields {
        let value = new.values.get(name).map(String::as_str).unwrap_or_default();
        if value.is_empty() && !spec.required {
            continue;
        }
        if let Err(why) = spec.check(name, value) {
            refusals.push(FieldError::new(name, why));
            continue;
        }
        if spec.kind.is_secret() {
            secrets.insert(name.clone(), Secret::new(value));
        } else {
            fields.insert(name.clone(), value.to_owned());
        }
    }
    let id = gleaner_framework::ids::new_id()[..12].to_owned();
    let identifier = manifest
        .identifier_field()
        .and_then(|f| fields.get(f).cloned());
    let label = new
        .label
        .or(identifier)
        .unwrap_or_else(|| format!("{}-{}", manifest.slug, &id[..6]));
    if let Err(e) = gleaner_framework::store::check_label(&label) {
        refusals.push(FieldError::new("label", e.message));
    } else if app
        .store
        .list_accounts()
        .await?
        .iter()
        .any(|a| a.label == label)
    {
        refusals.push(FieldError::new(
            "label",
            format!("an account labelled `{label}` exists already"),
        ));
    }
    if !refusals.is_empty() {
        return Ok(Err(refusals));
    }
    Ok(Ok(CheckedAccount {
        id,
        slug: manifest.slug.clone(),
        label,
        fields,
        secrets,
        endpoint: new.endpoint,
        name: manifest.name.clone(),
    }))
}

/// Stores the account (secrets sealed), with the OAuth redirect's fields and tokens if consent was
/// given, and creates its trigger. Returns it.
pub async fn create(
    app: &App,
    checked: CheckedAccount,
    consent: Option<(BTreeMap<String, String>, TokenSet)>,
) -> Result<Account> {
    let CheckedAccount {
        id,
        slug,
        label,
        mut fields,
        secrets,
        endpoint,
        name,
    } = checked;
    let tokens = consent.map(|(callback_fields, tokens)| {
        fields.extend(callback_fields);
        tokens
    });
    let account = Account {
        sealed_secrets: app.vault().await?.seal(&id, &secrets)?,
        folder: Account::default_folder(&name, &id),
        id,
        konnector: slug,
        label,
        fields,
        endpoint,
        created_at: Utc::now(),
    };
    // The unique index decides: another process may have added the same
    // label since the check.
    app.store.put_account(&account).await?;
    if let Some(tokens) = tokens {
        app.oauth().await?.save(&account.id, &tokens).await?;
    }
    app.planner().await?.sync_triggers().await?;
    Ok(account)
}

/// Changes some fields (secrets included) of an account; an empty secret value means "keep the
/// current one". Lifts the scheduler's pause after a credentials error. Returns the names changed,
/// or the refusals.
pub async fn update(
    app: &App,
    account: &Account,
    values: BTreeMap<String, String>,
) -> Result<Result<Vec<String>, Vec<FieldError>>> {
    let manifest = manifest(app, &account.konnector)?;
    let mut refusals = Vec::new();
    let mut new_fields = Vec::new();
    let mut new_secrets = Vec::new();
    for (name, value) in values {
        let Some(spec) = manifest.fields.get(&name) else {
            refusals.push(FieldError::new(
                &name,
                format!(
                    "konnector `{}` has no field `{name}`; its fields are: {}",
                    manifest.slug,
                    field_names(&manifest)
                ),
            ));
            continue;
        };
        if value.is_empty() && spec.kind.is_secret() {
            continue;
        }
        if let Err(why) = spec.check(&name, &value) {
            refusals.push(FieldError::new(&name, why));
            continue;
        }
        if spec.kind.is_secret() {
            new_secrets.push((name, value));
        } else {
            new_fields.push((name, value));
        }
    }
    if !refusals.is_empty() {
        return Ok(Err(refusals));
    }
    let mut account = account.clone();
    let mut changed = Vec::new();
    if !new_secrets.is_empty() {
        let mut secrets = app.secrets(&account).await?;
        for (name, value) in new_secrets {
            secrets.insert(name.clone(), Secret::new(value));
            changed.push(name);
        }
        account.sealed_secrets = app.vault().await?.seal(&account.id, &secrets)?;
    }
    for (name, value) in new_fields {
        account.fields.insert(name.clone(), value);
        changed.push(name);
    }
    if changed.is_empty() {
        return Ok(Ok(changed));
    }
    changed.sort();
    app.store.put_account(&account).await?;
    lift_block(app, &account.id).await?;
    Ok(Ok(changed))
}

/// Removes an account; with `purge`, its documents and its files folder too (and re-links bills).
#[allow(dead_code)] // The web UI's; the CLI reports the links ([`remove_with_links`]).
pub async fn remove(app: &App, account: &Account, purge: bool) -> Result<()> {
    remove_with_links(app, account, purge).await.map(|_| ())
}

/// [`remove`], returning what re-linking bills did after a purge (`None`
/// without purge), for a caller that reports it.
pub async fn remove_with_links(
    app: &App,
    account: &Account,
    purge: bool,
) -> Result<Option<LinkSummary>> {
    app.store.remove_account(&account.id, purge).await?;
    if !purge {
        return Ok(None);
    }
    // The account's own folder (unique in the store): never another
    // account's files.
    let dir = app.files.absolute(&account.folder);
    if !account.folder.trim_matches('/').is_empty() && dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(Some(app.store.link_bills_and_operations(Utc::now()).await?))
}

/// Saves fresh OAuth tokens for an existing account (consent given again) and lifts its block.
pub async fn save_consent(app: &App, account: &Account, tokens: &TokenSet) -> Result<()> {
    app.oauth().await?.save(&account.id, tokens).await?;
    lift_block(app, &account.id).await
}

/// Tells the scheduler an account's credentials changed: its block (after
/// `LOGIN_FAILED`, an outdated consent, ...) is lifted.
async fn lift_block(app: &App, account_id: &str) -> Result<()> {
    let sched = app.planner().await?;
    sched.sync_triggers().await?;
    sched.queue.credentials_changed(account_id).await?;
    Ok(())
}

/// The manifest's field names, for messages.
pub fn field_names(manifest: &Manifest) -> String {
    manifest
        .fields
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn new_account(values: &[(&str, &str)], label: Option<&str>) -> NewAccount {
        NewAccount {
            slug: "free-mobile".into(),
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            label: label.map(str::to_owned),
            endpoint: None,
            allow_remote_endpoint: false,
        }
    }

    #[tokio::test]
    async fn refusals_come_all_at_once_each_naming_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(Some(dir.path().to_owned()), None, None)
            .await
            .unwrap();
        let mut new = new_account(&[("login", "12"), ("nickname", "x")], Some("bad\nlabel"));
        new.endpoint = Some("https://example.com/".into());
        let refusals = check_new(&app, new).await.unwrap().err().unwrap();
        let mut fields: Vec<&str> = refusals.iter().map(|r| r.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["endpoint", "label", "login", "nickname", "password"],
            "{refusals:?}"
        );
        // Confirmed, a remote endpoint is accepted.
        let mut new = new_account(&[("login", "12345678"), ("password", "pw")], None);
        new.endpoint = Some("https://example.com/".into());
        new.allow_remote_endpoint = true;
        assert!(check_new(&app, new).await.unwrap().is_ok());
        // An unknown konnector is an error, not a field's refusal.
        let mut new = new_account(&[], None);
        new.slug = "no-such-bank".into();
        assert!(check_new(&app, new).await.is_err());
        app.close().await;
    }

    #[tokio::test]
    async fn create_update_and_remove_without_a_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(Some(dir.path().to_owned()), None, None)
            .await
            .unwrap();
        let checked = check_new(
            &app,
            new_account(&[("login", "12345678"), ("password", "first-pw")], None),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
        assert_eq!(checked.slug(), "free-mobile");
        assert_eq!(checked.label(), "12345678", "the identifier is the label");
        let id = checked.id().to_owned();
        let account = create(&app, checked, None).await.unwrap();
        assert_eq!(account.id, id);
        let planner = app.planner().await.unwrap();
        assert!(
            planner.queue.trigger(&id).await.unwrap().is_some(),
            "its trigger exists"
        );
        // The label is taken now.
        let taken = check_new(
            &app,
            new_account(&[("login", "12345678"), ("password", "pw")], None),
        )
        .await
        .unwrap()
        .err()
        .unwrap();
        assert_eq!(taken[0].field, "label");
        assert!(taken[0].message.contains("exists already"), "{taken:?}");
        // An empty secret keeps the current one; a bad value is refused.
        let values = BTreeMap::from([("password".to_owned(), String::new())]);
        assert_eq!(
            update(&app, &account, values).await.unwrap().unwrap(),
            Vec::<String>::new()
        );
        let secrets = app.secrets(&account).await.unwrap();
        assert_eq!(secrets["password"].expose(), "first-pw");
        let values = BTreeMap::from([("login".to_owned(), "12".to_owned())]);
        let refused = update(&app, &account, values).await.unwrap().unwrap_err();
        assert_eq!(refused[0].field, "login");
        let values = BTreeMap::from([("password".to_owned(), "second-pw".to_owned())]);
        assert_eq!(
            update(&app, &account, values).await.unwrap().unwrap(),
            ["password"]
        );
        let stored = app.find_account(&id).await.unwrap();
        assert_eq!(
            app.secrets(&stored).await.unwrap()["password"].expose(),
            "second-pw"
        );
        remove(&app, &stored, true).await.unwrap();
        assert!(app.find_account(&id).await.is_err());
        app.close().await;
    }
}
