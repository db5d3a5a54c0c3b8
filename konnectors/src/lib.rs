//! The built-in konnectors, their registry and (with the `sandbox`
//! feature) their sandboxes.
//!
//! Providers are grouped by category, one folder each:
//! `src/<category>/<name>/`. Each folder reads like a Woob module:
//! `manifest.toml`, `mod.rs` (wiring), auth, routes or api, pages, pure
//! mapping, and a `sandbox/` module.
//!
//! **A konnector registers itself by existing.** `build.rs` scans
//! `src/*/*/mod.rs` and generates the category modules and the list
//! [`Registry::builtin`] reads; there is no list to edit and no category
//! `mod.rs`. The conventions a folder follows:
//! - the folder name is the module name and, with `_` read as `-`, the
//!   slug (`free_mobile` <-> `free-mobile`); the manifest's `slug` and
//!   `category` must agree with the folder;
//! - its `mod.rs` defines
//!   `pub fn konnector() -> gleaner_framework::Result<Arc<dyn Konnector>>`;
//! - its sandbox, if any, is `sandbox/mod.rs` (or `sandbox.rs`), declared
//!   `#[cfg(feature = "sandbox")] pub mod sandbox;`, and defines
//!   `pub fn definition() -> gleaner_sandbox_kit::SandboxDef`.
//!
//! Architecture invariant: konnectors depend only on `gleaner-framework`;
//! sandboxes add `gleaner-sandbox-kit`, and only with the `sandbox`
//! feature, so the production build carries no sandbox code.

#![deny(missing_docs)]

use std::sync::Arc;

use gleaner_framework::{ErrorCode, Konnector, KonnectorError};

#[cfg(feature = "sandbox")]
pub use gleaner_sandbox_kit::{RunningSandbox, SandboxDef, ScenarioInfo, StartOptions};

// The category modules and `generated_entries()`, from `build.rs`.
include!(concat!(env!("OUT_DIR"), "/konnectors.rs"));

/// The contributor guide, `docs/writing-a-konnector.md`: from nothing to a
/// passing test. Included here so that `cargo test` compiles and runs its
/// examples.
#[doc = include_str!("../../docs/writing-a-konnector.md")]
pub mod guide {}

/// One konnector folder as `build.rs` found it, before validation.
struct Found {
    /// `src/<category>/<name>`.
    folder: &'static str,
    /// The category folder's name.
    category: &'static str,
    /// The konnector folder's name (its module).
    module: &'static str,
    /// Its `konnector()` function.
    konnector: fn() -> gleaner_framework::Result<Arc<dyn Konnector>>,
    /// Its `sandbox::definition()` function, when it has a sandbox.
    #[cfg(feature = "sandbox")]
    sandbox: Option<fn() -> SandboxDef>,
}

/// Where a registry entry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into this binary (a folder of this crate).
    Builtin,
    /// Installed into the data directory (`gleaner konnectors install`).
    Installed {
        /// What it is, in words ("Cozy Node konnector").
        kind: String,
        /// Where its files are.
        dir: std::path::PathBuf,
    },
}

/// One konnector of the registry.
#[derive(Clone)]
pub struct Entry {
    /// The konnector.
    pub konnector: Arc<dyn Konnector>,
    /// Its folder in the konnectors crate, `src/<category>/<name>` (empty
    /// for an installed konnector).
    pub folder: &'static str,
    /// Built in or installed.
    pub origin: Origin,
    /// Its sandbox, when it has one (only with the `sandbox` feature).
    #[cfg(feature = "sandbox")]
    pub sandbox: Option<SandboxDef>,
}

/// The catalogue of built-in konnectors.
#[derive(Clone)]
pub struct Registry {
    entries: Vec<Entry>,
}

/// The slug a konnector folder's name stands for: `free_mobile` ->
/// `free-mobile`.
pub fn slug_of_folder(name: &str) -> String {
    name.replace('_', "-")
}

fn registry_error(message: String) -> KonnectorError {
    KonnectorError::new(ErrorCode::ManifestInvalid, message)
}

impl Registry {
    /// Every built-in konnector (every folder under `src/<category>/`),
    /// sorted by slug, manifests validated against their folders.
    pub fn builtin() -> Result<Self, KonnectorError> {
        Self::from_found(generated_entries())
    }

    fn from_found(found: Vec<Found>) -> Result<Self, KonnectorError> {
        let mut entries: Vec<Entry> = Vec::with_capacity(found.len());
        for f in found {
            let konnector = (f.konnector)()?;
            let manifest = konnector.manifest();
            let expected = slug_of_folder(f.module);
            if manifest.slug != expected {
                return Err(registry_error(format!(
                    "{}: the manifest's slug is `{}` but the folder `{}` means the slug `{expected}` (folder name = slug with `-` written `_`)",
                    f.folder, manifest.slug, f.module
                )));
            }
            if manifest.category.to_string() != f.category {
                return Err(registry_error(format!(
                    "{}: the manifest's category is `{}` but the folder is in `{}`",
                    f.folder, manifest.category, f.category
                )));
            }
            if let Some(other) = entries
                .iter()
                .find(|e| e.konnector.manifest().slug == manifest.slug)
            {
                return Err(registry_error(format!(
                    "two konnectors have the slug `{}`: {} and {}",
                    manifest.slug, other.folder, f.folder
                )));
            }
            #[cfg(feature = "sandbox")]
            let sandbox = match f.sandbox.map(|definition| definition()) {
                Some(def) if def.slug != manifest.slug => {
                    return Err(registry_error(format!(
                        "{}: its sandbox says it is for `{}`, not `{}`",
                        f.folder, def.slug, manifest.slug
                    )));
                }
                Some(def) if def.scenarios.is_empty() => {
                    return Err(registry_error(format!(
                        "{}: its sandbox lists no scenario",
                        f.folder
                    )));
                }
                other => other,
            };
            entries.push(Entry {
                konnector,
                folder: f.folder,
                origin: Origin::Builtin,
                #[cfg(feature = "sandbox")]
                sandbox,
            });
        }
        entries.sort_by(|a, b| {
            a.konnector
                .manifest()
                .slug
                .cmp(&b.konnector.manifest().slug)
        });
        Ok(Self { entries })
    }

    /// Adds an installed konnector. Its slug must not be taken (an
    /// installed konnector never replaces a built-in one).
    pub fn add_installed(
        &mut self,
        konnector: Arc<dyn Konnector>,
        origin: Origin,
    ) -> Result<(), KonnectorError> {
        let slug = konnector.manifest().slug.clone();
        if let Some(other) = self
            .entries
            .iter()
            .find(|e| e.konnector.manifest().slug == slug)
        {
            let what = match &other.origin {
                Origin::Builtin => "a built-in konnector".to_owned(),
                Origin::Installed { dir, .. } => format!("the one installed in {}", dir.display()),
            };
            return Err(registry_error(format!(
                "the slug `{slug}` is taken by {what}"
            )));
        }
        let at = self
            .entries
            .partition_point(|e| e.konnector.manifest().slug < slug);
        self.entries.insert(
            at,
            Entry {
                konnector,
                folder: "",
                origin,
                #[cfg(feature = "sandbox")]
                sandbox: None,
            },
        );
        Ok(())
    }

    /// Every entry, sorted by slug.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every slug, sorted.
    pub fn slugs(&self) -> Vec<&str> {
        self.entries
            .iter()
            .map(|e| e.konnector.manifest().slug.as_str())
            .collect()
    }

    /// The entry for a slug; an unknown slug names the known ones.
    pub fn get(&self, slug: &str) -> Result<&Entry, KonnectorError> {
        self.entries
            .iter()
            .find(|e| e.konnector.manifest().slug == slug)
            .ok_or_else(|| {
                KonnectorError::new(
                    ErrorCode::KonnectorNotFound,
                    format!(
                        "no konnector `{slug}`; the known ones are: {}",
                        self.slugs().join(", ")
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
    fn every_builtin_manifest_is_valid_and_slugs_are_unique_and_sorted() {
        let registry = Registry::builtin().unwrap();
        let slugs = registry.slugs();
        let mut sorted = slugs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(slugs, sorted);
        assert!(slugs.contains(&"free-mobile") && slugs.contains(&"enedis"));
        let free = registry.get("free-mobile").unwrap();
        assert_eq!(free.folder, "src/telco/free_mobile");
        let err = registry.get("nope").err().unwrap();
        assert_eq!(err.code, ErrorCode::KonnectorNotFound);
        assert!(
            err.message.contains("enedis, free-mobile"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_folder_name_is_the_slug() {
        assert_eq!(slug_of_folder("free_mobile"), "free-mobile");
        assert_eq!(slug_of_folder("enedis"), "enedis");
    }

    fn found(folder: &'static str, category: &'static str, module: &'static str) -> Found {
        Found {
            folder,
            category,
            module,
            konnector: telco::free_mobile::konnector,
            #[cfg(feature = "sandbox")]
            sandbox: None,
        }
    }

    #[test]
    fn duplicates_and_mismatches_name_the_folders() {
        let err = Registry::from_found(vec![
            found("src/telco/free_mobile", "telco", "free_mobile"),
            found("src/bank/free_mobile", "telco", "free_mobile"),
        ])
        .err()
        .unwrap();
        assert!(
            err.message
                .contains("src/telco/free_mobile and src/bank/free_mobile"),
            "{}",
            err.message
        );
        let err = Registry::from_found(vec![found("src/telco/free", "telco", "free")])
            .err()
            .unwrap();
        assert!(err.message.contains("folder `free`"), "{}", err.message);
        let err = Registry::from_found(vec![found("src/bank/free_mobile", "bank", "free_mobile")])
            .err()
            .unwrap();
        assert!(err.message.contains("is in `bank`"), "{}", err.message);
    }

    #[cfg(feature = "sandbox")]
    #[test]
    fn every_builtin_has_a_sandbox_with_a_normal_scenario() {
        let registry = Registry::builtin().unwrap();
        for entry in registry.entries() {
            let def = entry.sandbox.as_ref().unwrap();
            assert_eq!(def.slug, entry.konnector.manifest().slug);
            assert_eq!(def.scenarios[0].name, "normal");
        }
    }
}
