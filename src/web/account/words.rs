//! Outcomes in plain words: error codes as sentences a person understands,
//! job states and triggers as words, second-factor prompts that say where
//! the code went. The codes themselves only appear in small print.

use gleaner_scheduler::{JobCode, JobState, TriggerKind};

/// What went wrong, for a person: `code` is the Cozy error (or skip) code
/// (one this build does not know gets a general sentence), `provider` the
/// konnector's name, `retry` when Gleaner tries again (a local time), if it
/// does.
pub fn error_sentence(code: &JobCode, provider: &str, retry: Option<&str>) -> String {
    use JobCode::{Konnector, SkippedAlreadyActive, SkippedNeedsUser};
    use gleaner_framework::ErrorCode as K;
    let again = match retry {
        Some(at) => format!("Gleaner tries again at {at}."),
        None => "Gleaner tries again at the next scheduled run.".to_owned(),
    };
    match code {
        Konnector(K::LoginFailed) => format!("{provider} refused the login or the password."),
        Konnector(K::LoginFailedTooManyAttempts) => format!(
            "{provider} blocked logins after too many attempts: unlock the account on its site, then run it again."
        ),
        Konnector(K::LoginFailedNeedsSecret) => {
            format!("{provider} needs a credential that is missing: add it.")
        }
        Konnector(K::UserActionNeeded) => {
            format!("{provider} wants you to do something on its site before the next import.")
        }
        Konnector(K::UserActionNeededOauthOutdated) => format!(
            "The access you gave to {provider} expired or was withdrawn: give consent again."
        ),
        Konnector(K::UserActionNeededScaRequired) => {
            "The bank access expired: give consent again.".to_owned()
        }
        Konnector(K::UserActionNeededChangePassword) => {
            format!("{provider} asks you to change your password on its site; then update it here.")
        }
        Konnector(K::UserActionNeededCguForm) => {
            format!("{provider} asks you to accept its new terms on its site.")
        }
        Konnector(K::UserActionNeededTwofaExpired) => format!(
            "{provider} asked for a second-factor code and none came in time: run it now and type the code."
        ),
        Konnector(K::UserActionNeededWrongTwofaCode) => format!(
            "{provider} refused the second-factor code: run it again and type the new code."
        ),
        Konnector(K::UserActionNeededAccountRemoved) => {
            format!("The account no longer exists at {provider}.")
        }
        Konnector(K::VendorDown) => format!("{provider} is down or cannot be reached; {again}"),
        Konnector(K::Timeout) => format!("{provider} took too long to answer; {again}"),
        Konnector(K::Maintenance) => format!("{provider} is under maintenance; {again}"),
        Konnector(K::FileDownloadFailed) => {
            format!("A file from {provider} could not be downloaded whole; {again}")
        }
        Konnector(K::ChallengeAsked) => format!(
            "{provider} asked for a check Gleaner cannot answer; log in once on its site, then run it again."
        ),
        Konnector(K::CaptchaResolutionFailed) => {
            format!("{provider} asked to solve a captcha, which Gleaner could not do.")
        }
        Konnector(K::SaveFileFailed | K::NotExistingDirectory) => {
            "A file could not be saved on this machine.".to_owned()
        }
        Konnector(K::DiskQuotaExceeded) => {
            "The disk is full: free some space, then run it again.".to_owned()
        }
        Konnector(K::PageChanged | K::SchemaChanged) => format!(
            "{provider}'s site changed and Gleaner no longer understands it: the konnector needs an update."
        ),
        Konnector(K::HostNotAllowed) => {
            "The konnector tried to reach a site it may not; it was stopped.".to_owned()
        }
        Konnector(K::BrowserMissing) => {
            "This provider needs Chromium, which is not installed on this machine.".to_owned()
        }
        Konnector(K::NodeMissing) => {
            "This konnector runs on Node.js, which is not installed on this machine.".to_owned()
        }
        Konnector(K::RequestBudgetExceeded) => {
            format!("The konnector sent too many requests to {provider} and was stopped.")
        }
        Konnector(K::InvalidData) => {
            format!("{provider} sent data that did not pass Gleaner's checks; nothing was saved.")
        }
        Konnector(K::StoreFailed) => "Gleaner's database failed on this machine.".to_owned(),
        Konnector(K::VaultFailed) => {
            "Gleaner could not open its vault of credentials on this machine.".to_owned()
        }
        Konnector(K::KonnectorNotFound | K::ManifestInvalid) => {
            "This version of Gleaner cannot run this provider.".to_owned()
        }
        SkippedNeedsUser => {
            "The scheduled run was skipped: the last run needs you first.".to_owned()
        }
        SkippedAlreadyActive => {
            "The scheduled run was skipped: another run of this account was going.".to_owned()
        }
        _ => "The import failed for an unexpected reason; nothing was saved.".to_owned(),
    }
}

/// A job's state in words, and its badge class.
pub fn job_state(state: JobState) -> (&'static str, &'static str) {
    match state {
        JobState::Queued => ("waiting to start", ""),
        JobState::Running => ("running", ""),
        JobState::AwaitingUser => ("waiting for your code", "warn"),
        JobState::Done => ("done", "ok"),
        JobState::Errored => ("failed", "bad"),
        JobState::Skipped => ("skipped", ""),
    }
}

/// Why a job ran, in words.
pub fn trigger(kind: TriggerKind) -> &'static str {
    match kind {
        TriggerKind::Slot => "scheduled",
        TriggerKind::Cron => "your schedule",
        TriggerKind::CatchUp => "catch-up",
        TriggerKind::Manual => "by hand",
        TriggerKind::Retry => "retry",
    }
}

/// `n` documents of a doctype, in words ("20 bills").
pub fn documents(doctype: &str, n: u64) -> String {
    let (one, many) = match doctype {
        "io.cozy.bills" => ("bill", "bills"),
        "io.cozy.files" => ("file", "files"),
        "io.cozy.bank.operations" => ("bank operation", "bank operations"),
        "io.cozy.bank.accounts" => ("bank account", "bank accounts"),
        "io.cozy.bank.balancehistories" => ("balance history", "balance histories"),
        "io.cozy.timeseries.energy" => ("energy reading", "energy readings"),
        _ => ("document", "documents"),
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What a run that waits for the person asks, for the label of the code
/// input (or the sentence beside the link to open).
pub fn twofa_prompt(kind: &str, hint: Option<&str>, provider: &str) -> String {
    let to = hint.map(|h| format!(" to {h}")).unwrap_or_default();
    match kind {
        "sms" => format!("{provider} sent a code by text message{to}. Type it here:"),
        "email" => format!("{provider} sent a code by email{to}. Type it here:"),
        "app_code" => format!("Type the code your authenticator app shows for {provider}:"),
        "app" => format!(
            "{provider} asks you to approve the login in its app. Approve it there, then press the button:"
        ),
        "redirect" => format!(
            "{provider} asks you to approve the access on its site. Open the link, approve, then press the button:"
        ),
        _ => format!("{provider} asks for a code{to}. Type it here:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_has_its_own_sentence() {
        for code in gleaner_framework::ErrorCode::ALL {
            let s = error_sentence(
                &JobCode::Konnector(*code),
                "Free Mobile",
                Some("2026-01-02 03:04"),
            );
            assert!(!s.contains(code.as_str()), "{code}: {s}");
            if *code != gleaner_framework::ErrorCode::UnknownError {
                assert!(!s.contains("unexpected reason"), "{code} has no sentence");
            }
        }
        assert!(
            error_sentence(
                &gleaner_framework::ErrorCode::VendorDown.into(),
                "Free Mobile",
                Some("2026-01-02 03:04")
            )
            .contains("tries again at 2026-01-02 03:04")
        );
    }
}
