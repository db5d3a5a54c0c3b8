//! `gleaner run --replay`: a run answered from a cassette, offline, into a
//! throwaway store (nothing of the installation is read or written but the
//! account and its secrets).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use gleaner_framework::cassette::{Cassette, CassetteMode, ReplayTransport};
use gleaner_framework::http::RetryPolicy;
use gleaner_framework::oauth::{TokenManager, TokenSet};
use gleaner_framework::store::{Account, FileStore, SqliteStore};
use gleaner_framework::{RunEnv, RunOptions, Secret, run_konnector};

use crate::app::App;
use crate::commands::print_report;
use crate::terminal::progress_bar;

/// Replays `source` (a cassette, or a directory: its newest cassette of the
/// account's konnector) for `account`, prints the report, and a warning
/// line listing the exchanges the replay did not use.
pub async fn replay(app: &App, account: &Account, source: &Path) -> Result<()> {
    let konnector = Arc::clone(&app.registry.get(&account.konnector)?.konnector);
    let path = Cassette::find(source, &account.konnector)?;
    let cassette = Cassette::load(&path)?;
    if cassette.konnector != account.konnector {
        bail!(
            "{} was recorded for konnector `{}`, not `{}`",
            path.display(),
            cassette.konnector,
            account.konnector
        );
    }
    let vault = app.vault().await?;
    let secrets = vault.open(&account.id, &account.sealed_secrets)?;
    let tmp = tempfile::tempdir()?;
    let store = SqliteStore::open(&tmp.path().join("replay.db")).await?;
    let env = RunEnv {
        store: Arc::new(store.clone()),
        files: FileStore::open(&tmp.path().join("files"))?,
        retry: RetryPolicy::default(),
    };
    // OAuth: a token manager over the throwaway store holding a stand-in
    // token, so the account's real tokens are neither used nor replaced.
    let oauth = if konnector.manifest().oauth.is_some() {
        let manager = TokenManager::new(Arc::new(store), vault)?;
        let stand_in = TokenSet {
            access_token: Secret::new("replay-access-token"),
            refresh_token: Some(Secret::new("replay-refresh-token")),
            expires_at: None,
        };
        manager.save(&account.id, &stand_in).await?;
        Some(Arc::new(manager))
    } else {
        None
    };
    let replay = Arc::new(ReplayTransport::new(cassette));
    let (bar, progress) = progress_bar(&account.label);
    let result = run_konnector(
        konnector.as_ref(),
        account,
        secrets,
        &env,
        RunOptions {
            progress: Some(progress),
            oauth,
            cassette: Some(CassetteMode::Replay(Arc::clone(&replay))),
            ..RunOptions::default()
        },
    )
    .await;
    bar.finish_and_clear();
    println!("replayed {} (nothing saved)", path.display());
    let unused = replay.unused();
    if !unused.is_empty() {
        println!(
            "warning: the replay did not use {} recorded exchange(s): {}",
            unused.len(),
            unused.join(", ")
        );
    }
    let report = result?;
    print_report(&account.label, &report);
    Ok(())
}
