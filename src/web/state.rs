//! What every handler shares.

use std::sync::Arc;

use gleaner_framework::Secret;
use gleaner_scheduler::Scheduler;

use super::account::ProgressBoard;
use super::auth::Auth;
use super::catalogue::Consents;
use crate::app::App;

/// The state of one `gleaner serve`.
pub struct WebState {
    /// The opened installation (store, files, vault, registry).
    pub app: Arc<App>,
    /// The scheduler: the queue the pages read and write, and (unless
    /// `--no-daemon`) the workers of this process.
    pub scheduler: Arc<Scheduler>,
    /// Where this server is reached (`http://127.0.0.1:8080`): OAuth
    /// redirects come back here.
    pub base_url: String,
    /// Logins and sessions.
    pub auth: Auth,
    /// The latest progress of the jobs this process runs.
    pub progress: ProgressBoard,
    /// OAuth consents started from a page, waiting for their redirect.
    pub consents: Consents,
    /// Becomes true when the server stops (long-lived responses end).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl WebState {
    /// The state of a server reached at `base_url`.
    pub fn new(
        app: Arc<App>,
        scheduler: Arc<Scheduler>,
        base_url: String,
        progress: ProgressBoard,
        stopping: tokio::sync::watch::Receiver<bool>,
        passphrase: Option<Secret>,
        secure_cookies: bool,
    ) -> Self {
        Self {
            app,
            scheduler,
            base_url,
            auth: Auth::new(passphrase, secure_cookies),
            progress,
            consents: Consents::default(),
            stopping,
        }
    }
}
