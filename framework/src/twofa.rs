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
}

impl TwoFactorKind {
    /// The lower-case name used in job records and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
            Self::AppCode => "app_code",
            Self::App => "app",
        }
    }

    /// Parses [`TwoFactorKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sms" => Self::Sms,
            "email" => Self::Email,
            "app_code" => Self::AppCode,
            "app" => Self::App,
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
    /// Asks for a code. For [`TwoFactorKind::App`] the answer is ignored
    /// (any value means "approved, go on polling").
    ///
    /// Fails with `USER_ACTION_NEEDED.TWOFA_EXPIRED` when nobody answers in
    /// time or nobody can be asked.
    async fn ask(&self, request: &TwoFactorRequest) -> Result<Secret>;
}

/// The channel of unattended runs: nobody to ask.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unattended;

#[async_trait]
impl TwoFactorChannel for Unattended {
    async fn ask(&self, request: &TwoFactorRequest) -> Result<Secret> {
        Err(KonnectorError::new(
            ErrorCode::UserActionNeededTwofaExpired,
            format!(
                "{} asks for a {} code for account {} and this run is unattended; run it by hand (`gleaner run {}`) to answer",
                request.konnector, request.kind, request.account_label, request.account_label
            ),
        ))
    }
}
