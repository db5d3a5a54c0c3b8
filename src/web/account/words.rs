//! Outcomes in plain words: error codes as sentences a person understands,
//! job states and triggers as words, second-factor prompts that say where
//! the code went. The codes themselves only appear in small print.

use gleaner_scheduler::{JobState, TriggerKind};

/// What went wrong, for a person: `code` is the Cozy error (or skip) code,
/// `provider` the konnector's name, `retry` when Gleaner tries again (a
/// local time), if it does.
pub fn error_sentence(code: &str, provider: &str, retry: Option<&str>) -> String {
    let again = match retry {
        Some(at) => format!("Gleaner tries again at {at}."),
        None => "Gleaner tries again at the next scheduled run.".to_owned(),
    };
    match code {
        "LOGIN_FAILED" => format!("{provider} refused the login or the password."),
        "LOGIN_FAILED.TOO_MANY_ATTEMPTS" => format!(
            "{provider} blocked logins after too many attempts: unlock the account on its site, then run it again."
        ),
        "LOGIN_FAILED.NEEDS_SECRET" => {
            format!("{provider} needs a credential that is missing: add it.")
        }
        "USER_ACTION_NEEDED" => {
            format!("{provider} wants you to do something on its site before the next import.")
        }
        "USER_ACTION_NEEDED.OAUTH_OUTDATED" => format!(
            "The access you gave to {provider} expired or was withdrawn: give consent again."
        ),
        "USER_ACTION_NEEDED.SCA_REQUIRED" => {
            "The bank access expired: give consent again.".to_owned()
        }
        "USER_ACTION_NEEDED.CHANGE_PASSWORD" => {
            format!("{provider} asks you to change your password on its site; then update it here.")
        }
        "USER_ACTION_NEEDED.CGU_FORM" => {
            format!("{provider} asks you to accept its new terms on its site.")
        }
        "USER_ACTION_NEEDED.TWOFA_EXPIRED" => format!(
            "{provider} asked for a second-factor code and none came in time: run it now and type the code."
        ),
        "USER_ACTION_NEEDED.WRONG_TWOFA_CODE" => format!(
            "{provider} refused the second-factor code: run it again and type the new code."
        ),
        "USER_ACTION_NEEDED.ACCOUNT_REMOVED" => {
            format!("The account no longer exists at {provider}.")
        }
        "VENDOR_DOWN" => format!("{provider} is down or cannot be reached; {again}"),
        "VENDOR_DOWN.TIMEOUT" => format!("{provider} took too long to answer; {again}"),
        "MAINTENANCE" => format!("{provider} is under maintenance; {again}"),
        "FILE_DOWNLOAD_FAILED" => {
            format!("A file from {provider} could not be downloaded whole; {again}")
        }
        "CHALLENGE_ASKED" => format!(
            "{provider} asked for a check Gleaner cannot answer; log in once on its site, then run it again."
        ),
        "CAPTCHA_RESOLUTION_FAILED" => {
            format!("{provider} asked to solve a captcha, which Gleaner could not do.")
        }
        "SAVE_FILE_FAILED" | "NOT_EXISTING_DIRECTORY" => {
            "A file could not be saved on this machine.".to_owned()
        }
        "DISK_QUOTA_EXCEEDED" => "The disk is full: free some space, then run it again.".to_owned(),
        "UNKNOWN_ERROR.PAGE_CHANGED" | "UNKNOWN_ERROR.SCHEMA_CHANGED" => format!(
            "{provider}'s site changed and Gleaner no longer understands it: the konnector needs an update."
        ),
        "UNKNOWN_ERROR.HOST_NOT_ALLOWED" => {
            "The konnector tried to reach a site it may not; it was stopped.".to_owned()
        }
        "UNKNOWN_ERROR.BROWSER_MISSING" => {
            "This provider needs Chromium, which is not installed on this machine.".to_owned()
        }
        "UNKNOWN_ERROR.NODE_MISSING" => {
            "This konnector runs on Node.js, which is not installed on this machine.".to_owned()
        }
        "UNKNOWN_ERROR.REQUEST_BUDGET_EXCEEDED" => {
            format!("The konnector sent too many requests to {provider} and was stopped.")
        }
        "UNKNOWN_ERROR.INVALID_DATA" => {
            format!("{provider} sent data that did not pass Gleaner's checks; nothing was saved.")
        }
        "UNKNOWN_ERROR.STORE_FAILED" => "Gleaner's database failed on this machine.".to_owned(),
        "UNKNOWN_ERROR.VAULT_FAILED" => {
            "Gleaner could not open its vault of credentials on this machine.".to_owned()
        }
        "UNKNOWN_ERROR.KONNECTOR_NOT_FOUND" | "UNKNOWN_ERROR.MANIFEST_INVALID" => {
            "This version of Gleaner cannot run this provider.".to_owned()
        }
        "SKIPPED.NEEDS_USER" => {
            "The scheduled run was skipped: the last run needs you first.".to_owned()
        }
        "SKIPPED.ALREADY_ACTIVE" => {
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
            let s = error_sentence(code.as_str(), "Free Mobile", Some("2026-01-02 03:04"));
            assert!(!s.contains(code.as_str()), "{code}: {s}");
            if *code != gleaner_framework::ErrorCode::UnknownError {
                assert!(!s.contains("unexpected reason"), "{code} has no sentence");
            }
        }
        assert!(
            error_sentence("VENDOR_DOWN", "Free Mobile", Some("2026-01-02 03:04"))
                .contains("tries again at 2026-01-02 03:04")
        );
    }
}
