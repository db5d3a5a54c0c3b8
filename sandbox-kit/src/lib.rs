//! The loopback server kit every provider sandbox uses.
//!
//! A sandbox is an offline stand-in for a provider's site or API, used by
//! tests, `gleaner demo` and `gleaner sandbox`. It is never part of the
//! production build: the konnectors crate compiles sandboxes only with its
//! `sandbox` feature.
//!
//! The pieces:
//! - [`SandboxServer`]: an axum [`Router`](axum::Router) served on
//!   `127.0.0.1` (any port or a given one), stopped gracefully on
//!   [`SandboxServer::shutdown`] or drop, with request counters
//!   ([`Stats`]) and [`Faults`] (429 with `Retry-After`, 5xx, maintenance)
//!   applied before the sandbox's own handlers.
//! - [`Sessions`]: server-side sessions keyed by a cookie, with an idle TTL
//!   on an injectable [`Clock`] ([`ManualClock`] lets tests move time).
//! - [`cookies`], [`form`], [`paging`], [`pdf`] and [`respond`]: the small
//!   helpers every sandbox needed its own copy of.
//! - [`SandboxDef`] and [`RunningSandbox`]: how a konnector folder declares
//!   its sandbox to the registry (`sandbox::definition()`), and what a
//!   started one hands back (URL, demo credentials, a guard).
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! use axum::{Router, routing::get};
//! use gleaner_sandbox_kit::SandboxServer;
//!
//! let server = SandboxServer::start(Router::new().route("/", get(|| async { "hi" })), None).await?;
//! server.faults().rate_limit_next(1); // the next request gets a 429
//! println!("listening on {}", server.base_url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: the kit knows no provider and no konnector; it
//! depends on neither the framework nor the konnectors crate.

#![deny(missing_docs)]

pub mod clock;
pub mod cookies;
pub mod def;
pub mod faults;
pub mod form;
pub mod paging;
pub mod pdf;
pub mod respond;
pub mod server;
pub mod sessions;

pub use clock::{Clock, ManualClock};
pub use def::{RunningSandbox, SandboxDef, ScenarioInfo, StartFuture, StartOptions};
pub use faults::{Fault, FaultPages, Faults};
pub use server::{DEBUG_PREFIX, SandboxServer, Stats};
pub use sessions::Sessions;
