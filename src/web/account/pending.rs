//! Stand-ins for what branch `next-steps` brings (typed next steps, the
//! terminal-free account operations, pause and resume). Each item has the
//! name and signature of the promised one, so that merging is replacing
//! this file's uses:
//!
//! - `UserAction`, `next_step(code)` -> `gleaner_framework::UserAction`,
//!   `ErrorCode::parse(code).and_then(ErrorCode::next_step)`;
//! - `accounts::{FieldError, update, remove}` -> `crate::accounts::*`;
//! - `set_paused`, `is_paused` -> `Queue::set_paused`,
//!   `TriggerState.paused`;
//! - `is_no_question` -> `matches!(e, SchedulerError::NoQuestion { .. })`.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use gleaner_scheduler::{SchedulerError, TriggerState};

/// What the person can do next about an outcome (the variants of
/// `gleaner_framework::UserAction`).
// TODO(next-steps): `use gleaner_framework::UserAction;` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(dead_code)] // Every variant is worded; not every one is produced here.
pub enum UserAction {
    /// The provider refused the credentials or one is missing.
    UpdateCredentials,
    /// The provider's consent (OAuth, bank access) ended.
    GiveConsentAgain,
    /// A second factor is needed: run attended and answer it.
    AnswerTwoFactor,
    /// Something must be done on the provider's own site.
    ActOnProviderSite,
    /// The provider is down: the scheduler retries.
    WaitForProvider,
    /// The provider's pages or API changed: the konnector needs an update.
    UpdateKonnector,
    /// The disk is full.
    FreeDiskSpace,
    /// Another run holds the account, or nothing waits.
    SeeJobs,
    /// The vault key file is used although a passphrase was given.
    SwitchVaultToPassphrase,
}

/// The next step of an error code.
// TODO(next-steps): `ErrorCode::parse(code).and_then(ErrorCode::next_step)`.
pub fn next_step(code: &str) -> Option<UserAction> {
    use UserAction::*;
    Some(match code {
        "LOGIN_FAILED" | "LOGIN_FAILED.NEEDS_SECRET" => UpdateCredentials,
        "LOGIN_FAILED.TOO_MANY_ATTEMPTS"
        | "USER_ACTION_NEEDED"
        | "USER_ACTION_NEEDED.CHANGE_PASSWORD"
        | "USER_ACTION_NEEDED.CGU_FORM"
        | "USER_ACTION_NEEDED.ACCOUNT_REMOVED"
        | "CHALLENGE_ASKED" => ActOnProviderSite,
        "USER_ACTION_NEEDED.OAUTH_OUTDATED" | "USER_ACTION_NEEDED.SCA_REQUIRED" => GiveConsentAgain,
        "USER_ACTION_NEEDED.TWOFA_EXPIRED" | "USER_ACTION_NEEDED.WRONG_TWOFA_CODE" => {
            AnswerTwoFactor
        }
        "VENDOR_DOWN" | "VENDOR_DOWN.TIMEOUT" | "MAINTENANCE" => WaitForProvider,
        "UNKNOWN_ERROR.PAGE_CHANGED" | "UNKNOWN_ERROR.SCHEMA_CHANGED" => UpdateKonnector,
        "DISK_QUOTA_EXCEEDED" => FreeDiskSpace,
        _ => return None,
    })
}

/// Whether `give_answer` refused because no run waits for a code.
// TODO(next-steps): `matches!(e, SchedulerError::NoQuestion { .. })`.
pub fn is_no_question(e: &SchedulerError) -> bool {
    matches!(e, SchedulerError::NotFound(_))
}

/// Accounts paused from a page, in this process only.
// TODO(next-steps): gone; `Queue::set_paused` stores it in `sched_triggers`.
fn paused() -> &'static Mutex<HashSet<String>> {
    static PAUSED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    PAUSED.get_or_init(Mutex::default)
}

/// Pauses or resumes an account's automatic runs.
// TODO(next-steps): `state.scheduler.queue.set_paused(account_id, paused).await`.
pub async fn set_paused(
    _queue: &gleaner_scheduler::Queue,
    account_id: &str,
    pause: bool,
) -> Result<(), SchedulerError> {
    let mut set = paused().lock().unwrap_or_else(|e| e.into_inner());
    if pause {
        set.insert(account_id.to_owned());
    } else {
        set.remove(account_id);
    }
    Ok(())
}

/// Whether an account is paused.
// TODO(next-steps): `trigger.paused`.
pub fn is_paused(trigger: &TriggerState) -> bool {
    paused()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&trigger.account_id)
}

/// The terminal-free account operations of `src/accounts.rs`.
// TODO(next-steps): `use crate::accounts;` instead of this module.
pub mod accounts {
    use std::collections::BTreeMap;

    use anyhow::{Context, Result};
    use gleaner_framework::Secret;
    use gleaner_framework::store::{Account, AccountStore, DocStore};

    use crate::app::App;

    /// One field's refusal, for a form to show beside the field.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FieldError {
        /// The field's name.
        pub field: String,
        /// Why it was refused.
        pub message: String,
    }

    /// Changes some fields (secrets included) of an account; an empty
    /// secret value keeps the current one. Lifts the scheduler's block.
    pub async fn update(
        app: &App,
        account: &Account,
        values: BTreeMap<String, String>,
    ) -> Result<Result<Vec<String>, Vec<FieldError>>> {
        let manifest = app
            .registry
            .get(&account.konnector)?
            .konnector
            .manifest()
            .clone();
        let mut refusals = Vec::new();
        let mut fields = Vec::new();
        let mut secrets = Vec::new();
        for (name, value) in values {
            let Some(spec) = manifest.fields.get(&name) else {
                refusals.push(FieldError {
                    message: format!("there is no field `{name}`"),
                    field: name,
                });
                continue;
            };
            if value.is_empty() && spec.kind.is_secret() {
                continue;
            }
            if let Err(message) = spec.check(&name, &value) {
                refusals.push(FieldError {
                    field: name,
                    message,
                });
                continue;
            }
            if spec.kind.is_secret() {
                secrets.push((name, value));
            } else {
                fields.push((name, value));
            }
        }
        if !refusals.is_empty() {
            return Ok(Err(refusals));
        }
        let mut account = account.clone();
        let mut changed = Vec::new();
        if !secrets.is_empty() {
            let mut all = app.secrets(&account).await?;
            for (name, value) in secrets {
                all.insert(name.clone(), Secret::new(value));
                changed.push(name);
            }
            account.sealed_secrets = app.vault().await?.seal(&account.id, &all)?;
        }
        for (name, value) in fields {
            account.fields.insert(name.clone(), value);
            changed.push(name);
        }
        if changed.is_empty() {
            return Ok(Ok(changed));
        }
        changed.sort();
        app.store.put_account(&account).await?;
        crate::scheduling::credentials_changed(app, &account).await?;
        Ok(Ok(changed))
    }

    /// Removes an account; with `purge`, its documents and files folder
    /// too (and re-links bills).
    pub async fn remove(app: &App, account: &Account, purge: bool) -> Result<()> {
        app.store.remove_account(&account.id, purge).await?;
        if purge {
            let dir = app.files.absolute(&account.folder);
            if !account.folder.trim_matches('/').is_empty() && dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            }
            app.store
                .link_bills_and_operations(chrono::Utc::now())
                .await?;
        }
        Ok(())
    }
}
