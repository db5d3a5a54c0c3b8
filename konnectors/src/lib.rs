//! The built-in konnectors, their registry and their sandboxes.
//!
//! Providers are grouped by category (`telco`, and later `bank`, `energy`,
//! `insurance`). Each konnector folder reads like a Woob module: manifest,
//! auth, routes, pages, pure mapping, sandbox.
//!
//! [`Registry`] is the one list of built-in konnectors: the CLI's catalogue,
//! the runner's lookup and `gleaner demo` all read it. Adding a provider is
//! one line in [`Registry::builtin`].
//!
//! Architecture invariant: konnectors depend only on `gleaner-framework`.

#![deny(missing_docs)]

pub mod energy;
pub mod telco;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gleaner_framework::{ErrorCode, Konnector, KonnectorError};

/// A sandbox started for the demo: where it listens and the account
/// fields that log in to it.
pub struct RunningSandbox {
    /// The base URL on loopback.
    pub base_url: String,
    /// Non-secret fields of a demo account.
    pub fields: Vec<(String, String)>,
    /// Secret fields of a demo account.
    pub secrets: Vec<(String, String)>,
    /// Keeps the server alive; dropping it stops the server.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Starts a konnector's sandbox.
pub type SandboxStarter =
    fn() -> Pin<Box<dyn Future<Output = std::io::Result<RunningSandbox>> + Send>>;

/// One built-in konnector.
#[derive(Clone)]
pub struct Entry {
    /// The konnector.
    pub konnector: Arc<dyn Konnector>,
    /// Its sandbox, when it has one.
    pub sandbox: Option<SandboxStarter>,
}

/// The catalogue of built-in konnectors.
#[derive(Clone)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// Every built-in konnector, manifests validated.
    pub fn builtin() -> Result<Self, KonnectorError> {
        let entries = vec![
            Entry {
                konnector: Arc::new(telco::free_mobile::FreeMobile::new()?),
                sandbox: Some(telco::free_mobile::start_demo),
            },
            Entry {
                konnector: Arc::new(energy::enedis::Enedis::new()?),
                sandbox: Some(energy::enedis::start_demo),
            },
        ];
        Ok(Self { entries })
    }

    /// Every entry, in catalogue order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry for a slug; an unknown slug names the known ones.
    pub fn get(&self, slug: &str) -> Result<&Entry, KonnectorError> {
        self.entries
            .iter()
            .find(|e| e.konnector.manifest().slug == slug)
            .ok_or_else(|| {
                let known: Vec<_> = self
                    .entries
                    .iter()
                    .map(|e| e.konnector.manifest().slug.as_str())
                    .collect();
                KonnectorError::new(
                    ErrorCode::KonnectorNotFound,
                    format!(
                        "no konnector `{slug}`; the known ones are: {}",
                        known.join(", ")
                    ),
                )
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_manifest_is_valid_and_slugs_are_unique() {
        let registry = Registry::builtin().unwrap();
        let mut slugs: Vec<_> = registry
            .entries()
            .iter()
            .map(|e| e.konnector.manifest().slug.clone())
            .collect();
        let n = slugs.len();
        slugs.dedup();
        assert_eq!(slugs.len(), n);
        let err = registry.get("nope").err().unwrap();
        assert_eq!(err.code, ErrorCode::KonnectorNotFound);
        assert!(err.message.contains("free-mobile"));
    }
}
