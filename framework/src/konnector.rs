//! The trait every konnector implements.

use async_trait::async_trait;

use crate::context::RunContext;
use crate::error::Result;
use crate::manifest::Manifest;

/// A provider's konnector.
///
/// A konnector reads like a Woob module: its manifest, then `auth` (login),
/// then the pages or API calls, then pure mapping functions from provider
/// structs to doctypes. Everything it may touch comes through the
/// [`RunContext`]: the account's fields and secrets, the HTTP client, and
/// the staging area where documents wait for the run's commit.
#[async_trait]
pub trait Konnector: Send + Sync {
    /// The validated manifest.
    fn manifest(&self) -> &Manifest;

    /// Logs in, fetches and saves. Returning an error discards everything
    /// the run staged: the store keeps its previous state.
    async fn run(&self, ctx: &mut RunContext) -> Result<()>;
}
