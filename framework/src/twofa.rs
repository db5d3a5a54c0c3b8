//! Second factors: how a konnector asks the person for a code.
//!
//! A konnector calls [`crate::RunContext::two_factor`] with the
//! [`TwoFactorKind`] the provider demands. The run's [`TwoFactorChannel`]
//! decides how the question reaches a person:
//! - a manual run in a terminal prompts there (the `gleaner` binary);
//! - a run started elsewhere (a job of the daemon) puts the job in
//!   `awaiting_user` and waits, up to a timeout, for `gleaner 2fa <account>
//!   <code>` (the scheduler's channel);
//! - an unattended run ([`Unattended`], the default) has nobody to ask and
//!   fails at once with `USER_ACTION_NEEDED.TWOFA_EXPIRED`.
//!
//! [`TwoFactorKind::Redirect`] is the same path for a link the person opens
//! in a browser (a bank's SCA redirect, an aggregator's bank link): the hint
//! is the link, no code comes back, the konnector then polls the provider.
//! [`LoopbackLinks`] answers those by itself when the link is on loopback (a
//! sandbox's consent page approves on GET): `gleaner demo` and the test
//! harness use it.

use std::fmt;

use async_trait::async_trait;

use crate::error::{ErrorCode, KonnectorError, Result};
use crate::secret::Secret;

/// The kind of second factor a provider demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TwoFactorKind {
    /// A code sent by SMS.
    Sms,
    /// A code sent by email.
    Email,
    /// A code shown by an authenticator app (TOTP).
    AppCode,
    /// A decoupled approval in the provider's app: no code, the konnector
    /// polls the provider; the channel only tells the person.
    App,
    /// A link to open in a browser, where the person approves at the
    /// provider (a bank's SCA redirect, an aggregator's bank link): the
    /// request's hint is the link; no code, the konnector polls the provider
    /// afterwards; the channel shows the link and waits for "done".
    Redirect,
}

impl TwoFactorKind {
    /// The lower-case name used in job records and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
            Self::AppCode => "app_code",
            Self::App => "app",
            Self::Redirect => "redirect",
        }
    }

    /// Parses [`TwoFactorKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sms" => Self::Sms,
            "email" => Self::Email,
            "app_code" => Self::AppCode,
            "app" => Self::App,
            "redirect" => Self::Redirect,
            _ => return None,
        })
    }
}

impl fmt::Display for TwoFactorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One question to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoFactorRequest {
    /// The account.
    pub account_id: String,
    /// The account's label, to name it in a prompt.
    pub account_label: String,
    /// The konnector slug.
    pub konnector: String,
    /// What the provider demands.
    pub kind: TwoFactorKind,
    /// Where the code went, as the provider shows it (`j***@example.org`).
    pub hint: Option<String>,
    /// 1 for the first question of a run, 2 after a wrong code, ...
    pub attempt: u32,
}

/// Carries a [`TwoFactorRequest`] to a person and brings back the code.
#[async_trait]
pub trait TwoFactorChannel: Send + Sync {
    /// Asks for a code. For [`TwoFactorKind::App`] and
    /// [`TwoFactorKind::Redirect`] the answer is ignored (any value means
    /// "approved, go on polling").
    ///
    /// Fails with `USER_ACTION_NEEDED.TWOFA_EXPIRED` when nobody answers in
    /// time or nobody can be asked.
    async fn ask(&self, request: &TwoFactorRequest) -> Result<Secret>;

    /// Whether someone may answer (false for [`Unattended`]): an external
    /// konnector is told so before it asks (`COZY_JOB_MANUAL_EXECUTION`).
    fn attended(&self) -> bool {
        true
    }
}

/// The channel of unattended runs: nobody to ask.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unattended;

#[async_trait]
impl TwoFactorChannel for Unattended {
    fn attended(&self) -> bool {
        false
    }

    async fn ask(&self, request: &TwoFactorRequest) -> Result<Secret> {
        Err(KonnectorError::new(
            ErrorCode::UserActionNeededTwofaExpired,
            format!(
                "{} asks for a {} code for account {} and this run is unattended; run it attended to answer",
                request.konnector, request.kind, request.account_label
            ),
        )
        .with_next(crate::UserAction::AnswerTwoFactor))
    }
}

/// A channel that follows [`TwoFactorKind::Redirect`] links on loopback
/// (`http://127.0.0.1:PORT/...`, a sandbox's consent page, which approves on
/// GET) with one GET and answers "done"; every other question, and a link
/// anywhere else, goes to the inner channel. `gleaner demo` and the test
/// harness put it in front of their channel, as they play the browser on a
/// sandbox's OAuth consent page.
pub struct LoopbackLinks {
    inner: std::sync::Arc<dyn TwoFactorChannel>,
}

impl LoopbackLinks {
    /// Follows loopback links itself, hands the rest to `inner`.
    pub fn new(inner: std::sync::Arc<dyn TwoFactorChannel>) -> Self {
        Self { inner }
    }

    /// Whether `link` is a plain-HTTP URL on 127.0.0.1 with a port.
    pub fn is_loopback_link(link: &str) -> bool {
        url::Url::parse(link).is_ok_and(|u| {
            u.scheme() == "http" && u.host_str() == Some("127.0.0.1") && u.port().is_some()
        })
    }
}

#[async_trait]
impl TwoFactorChannel for LoopbackLinks {
    fn attended(&self) -> bool {
        self.inner.attended()
    }

    async fn ask(&self, request: &TwoFactorRequest) -> Result<Secret> {
        let link = match (&request.kind, &request.hint) {
            (TwoFactorKind::Redirect, Some(link)) if Self::is_loopback_link(link) => link,
            _ => return self.inner.ask(request).await,
        };
        let failed = |e: reqwest::Error| {
            KonnectorError::new(
                ErrorCode::UserActionNeededTwofaExpired,
                format!(
                    "{} asked to open a link on this machine and it failed: {}",
                    request.konnector,
                    e.without_url()
                ),
            )
        };
        reqwest::get(link.as_str())
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?;
        Ok(Secret::new(""))
    }
}
