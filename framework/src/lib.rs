//! The konnector SDK: everything a Gleaner konnector builds on.
//!
//! A konnector implements [`Konnector`]: a validated [`Manifest`] and an
//! async `run` that works through a [`RunContext`]. The context gives it
//! the account's fields and [`Secret`]s, an [`HttpClient`] that only talks
//! to the manifest's hosts (with retries, cookies and a request budget),
//! and a staging area for typed [`doctypes`]. [`run_konnector`] runs it and
//! commits what it staged to a [`store::DocStore`] in one transaction, or
//! nothing at all.
//!
//! Pages are parsed with [`scrape::HtmlPage`], whose selectors fail loudly
//! naming the selector and URL, and values with [`filters`] (amounts into
//! exact decimals, French and English dates, ISO 4217 currencies).
//!
//! Every error is a [`KonnectorError`] with a Cozy-style [`ErrorCode`] and,
//! where the person can do something about it, a typed next step
//! ([`UserAction`]) that front ends word; the framework words no command.
//!
//! Architecture invariant: this crate knows no provider. Konnectors depend
//! on it, never the other way round.

#![deny(missing_docs)]

pub mod bank;
pub mod browser;
pub mod cassette;
pub mod clock;
pub mod context;
pub mod doctypes;
pub mod endpoint;
pub mod error;
pub mod filters;
pub mod http;
pub mod ids;
pub mod konnector;
pub mod liveness;
pub mod manifest;
pub mod next_step;
pub mod oauth;
pub mod redact;
pub mod runner;
pub mod scrape;
pub mod secret;
pub mod session;
pub mod store;
pub mod tenant;
pub mod twofa;
pub mod vault;

pub use browser::{BrowserConfig, BrowserSession, Snapshot};
pub use cassette::CassetteMode;
pub use context::{
    AccountDocs, BillFile, OAuthSession, Progress, ProgressFn, RunContext, StagedFileInfo,
};
pub use error::{ErrorCode, ErrorSource, KonnectorError, Locator, Result, SourceKind};
pub use http::HttpClient;
pub use konnector::Konnector;
pub use manifest::Manifest;
pub use next_step::UserAction;
pub use runner::{RunEnv, RunOptions, RunReport, run_konnector};
pub use secret::Secret;
pub use tenant::TenantId;
pub use twofa::{TwoFactorChannel, TwoFactorKind, TwoFactorRequest};

/// Re-exported so konnectors need no direct dependency for trait impls.
pub use async_trait::async_trait;
