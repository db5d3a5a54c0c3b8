//! What a person can do next about an outcome, as a value.
//!
//! Libraries never word a command line or a button: they return a
//! [`UserAction`], and the front end (the CLI, a web page) words it. The
//! error codes carry a default ([`crate::ErrorCode::next_step`]); an error
//! can override it ([`crate::KonnectorError::with_next`]).

/// What the person can do next about an outcome. Libraries return it; the CLI words it as a
/// command, the web UI as a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAction {
    /// The provider refused the credentials or one is missing: update them.
    UpdateCredentials,
    /// The provider's consent (OAuth, bank access) ended or was refused: give it again.
    GiveConsentAgain,
    /// A second factor is needed: run the account attended and answer it.
    AnswerTwoFactor,
    /// Something must be done on the provider's own site (new terms, a password change, an
    /// unlock after too many attempts).
    ActOnProviderSite,
    /// The provider is down or limits requests: nothing to do, the scheduler retries.
    WaitForProvider,
    /// The provider's pages or API changed: the konnector needs an update (report it).
    UpdateKonnector,
    /// The disk is full: free space, then run again.
    FreeDiskSpace,
    /// Another run holds the account, or nothing waits: look at the account's jobs.
    SeeJobs,
    /// The vault key file is used although a passphrase was given: switch the vault.
    SwitchVaultToPassphrase,
}

impl UserAction {
    /// Every action, in the order of the enum (for front ends and tests).
    pub const ALL: &'static [UserAction] = &[
        Self::UpdateCredentials,
        Self::GiveConsentAgain,
        Self::AnswerTwoFactor,
        Self::ActOnProviderSite,
        Self::WaitForProvider,
        Self::UpdateKonnector,
        Self::FreeDiskSpace,
        Self::SeeJobs,
        Self::SwitchVaultToPassphrase,
    ];

    /// The stable snake_case name (the serde form), e.g. `update_credentials`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpdateCredentials => "update_credentials",
            Self::GiveConsentAgain => "give_consent_again",
            Self::AnswerTwoFactor => "answer_two_factor",
            Self::ActOnProviderSite => "act_on_provider_site",
            Self::WaitForProvider => "wait_for_provider",
            Self::UpdateKonnector => "update_konnector",
            Self::FreeDiskSpace => "free_disk_space",
            Self::SeeJobs => "see_jobs",
            Self::SwitchVaultToPassphrase => "switch_vault_to_passphrase",
        }
    }
}

impl std::fmt::Display for UserAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for a in UserAction::ALL {
            let json = serde_json::to_string(a).expect("serializes");
            assert_eq!(json, format!("\"{}\"", a.as_str()));
            let back: UserAction = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, *a);
        }
    }
}
