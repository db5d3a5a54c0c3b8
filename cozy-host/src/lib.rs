//! Runs Cozy Cloud's Node konnectors unchanged.
//!
//! Cozy's catalogue holds about two hundred open-source konnectors, each a
//! Node script that cozy-stack starts with a few environment variables and
//! that talks to the stack's HTTP API. This crate plays cozy-stack's part
//! for one run, so that Gleaner's scheduler, vault, retries, 2FA and
//! one-transaction commit drive them like Gleaner's own konnectors:
//!
//! - [`manifest`]: `manifest.konnector` read and checked, and the Gleaner
//!   [`gleaner_framework::Manifest`] derived from it;
//! - [`install`]: a build (folder or `.tar.gz`) copied into the data
//!   directory, with its origin, checksum, time limit and allow-list;
//! - [`process`]: `node index.js` with cozy-stack's environment, its JSON
//!   log lines, its outcome, its process group killed on every path;
//! - [`stack`]: the API subset the konnector libraries call, on loopback,
//!   backed by the store, the files tree and the vault;
//! - [`proxy`]: the egress proxy that records every host contacted and
//!   refuses hosts outside an allow-list;
//! - [`konnector`]: [`NodeKonnector`], all of it behind Gleaner's
//!   `Konnector` trait.
//!
//! The crate knows no provider and no CLI; `src/` installs and lists.

pub mod install;
pub mod konnector;
pub mod manifest;
pub mod process;
pub mod proxy;
pub mod stack;

pub use install::{InstallError, InstallOptions, Installed};
pub use konnector::NodeKonnector;
pub use manifest::CozyManifest;
