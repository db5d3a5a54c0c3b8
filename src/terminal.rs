//! Terminal rendering: tables, progress bars, text from outside made safe,
//! and the one place that words a [`UserAction`] as a command line.
//!
//! The libraries return typed next steps; everything the CLI prints about
//! them is worded here, so `commands.rs` and `scheduling.rs` both depend on
//! this module and not on each other.

use std::sync::Arc;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use gleaner_framework::{KonnectorError, Progress, ProgressFn, UserAction};
use gleaner_scheduler::SchedulerError;
use indicatif::{ProgressBar, ProgressStyle};

/// A table in the CLI's style.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Text from outside (a label, a provider's string) made safe for a
/// terminal: control characters (newlines, ANSI escapes) are shown
/// escaped, never interpreted.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A progress bar for a run and the callback that feeds it. While the run
/// waits on a request ("waiting for free.fr (GET /invoices)"), the steady
/// tick shows for how long.
pub fn progress_bar(label: &str) -> (ProgressBar, ProgressFn) {
    let bar = ProgressBar::new_spinner();
    let since = Arc::new(std::sync::Mutex::new((
        String::new(),
        std::time::Instant::now(),
    )));
    let waited = Arc::clone(&since);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}{waited}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "waited",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    if let Ok(s) = waited.lock()
                        && s.0.starts_with("waiting for")
                        && s.1.elapsed().as_secs() >= 1
                    {
                        let _ = w.write_str(&format!(" {} s", s.1.elapsed().as_secs()));
                    }
                },
            )
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let b = bar.clone();
    let progress: ProgressFn = Arc::new(move |p: &Progress| {
        if let Some(total) = p.total {
            b.set_length(total);
        }
        b.set_position(p.done);
        if let Ok(mut s) = since.lock()
            && s.0 != p.message
        {
            *s = (p.message.clone(), std::time::Instant::now());
        }
        b.set_message(p.message.clone());
    });
    (bar, progress)
}

/// A next step worded for the terminal: a command to type, or a sentence
/// when there is nothing to type. `label` is the account's label (made
/// printable here).
pub fn command_for(action: UserAction, label: &str) -> String {
    let label = printable(label);
    match action {
        UserAction::UpdateCredentials => format!("gleaner accounts edit {label} --field password="),
        UserAction::GiveConsentAgain => format!("gleaner accounts consent {label}"),
        UserAction::AnswerTwoFactor => format!("gleaner run {label}"),
        UserAction::ActOnProviderSite => format!(
            "log in on the provider's own site and do what it asks (new terms, a password change, an unlock), then `gleaner run {label}`"
        ),
        UserAction::WaitForProvider => {
            "nothing to do: the provider is down or busy, and automatic runs retry".to_owned()
        }
        UserAction::UpdateKonnector => format!(
            "the provider changed: this konnector needs an update; report it with the output of `gleaner dev {label}`"
        ),
        UserAction::FreeDiskSpace => {
            format!("free some disk space, then `gleaner run {label}`")
        }
        UserAction::SeeJobs => format!("gleaner jobs --account {label}"),
        UserAction::SwitchVaultToPassphrase => "gleaner vault rotate --to-passphrase".to_owned(),
    }
}

/// The next step of an error, from the first typed error in its chain (a
/// konnector's or the scheduler's).
pub fn next_step_of(e: &anyhow::Error) -> Option<UserAction> {
    e.chain().find_map(|c| {
        if let Some(k) = c.downcast_ref::<KonnectorError>() {
            Some(k.next_step())
        } else {
            c.downcast_ref::<SchedulerError>()
                .map(SchedulerError::next_step)
        }
    })?
}

/// An error's next step, worded: attached as the outermost context by a
/// command that knows the account ([`with_next_step`]), and printed by
/// `main` on its own line after the error.
#[derive(Debug)]
pub struct Next(pub String);

impl std::fmt::Display for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "next: {}", self.0)
    }
}

/// Attaches the worded next step of `e` (if it has one) for the account
/// labelled `label`.
pub fn with_next_step(e: anyhow::Error, label: &str) -> anyhow::Error {
    match next_step_of(&e) {
        Some(action) => e.context(Next(command_for(action, label))),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_worded_with_the_label_where_it_needs_one() {
        for action in UserAction::ALL {
            let text = command_for(*action, "phone");
            assert!(!text.is_empty());
            let needs_label = !matches!(
                action,
                UserAction::WaitForProvider | UserAction::SwitchVaultToPassphrase
            );
            assert_eq!(text.contains("phone"), needs_label, "{action}: {text}");
        }
        assert_eq!(
            command_for(UserAction::UpdateCredentials, "phone"),
            "gleaner accounts edit phone --field password="
        );
        assert_eq!(
            command_for(UserAction::SeeJobs, "a\nb"),
            "gleaner jobs --account a\\nb"
        );
    }

    #[test]
    fn the_step_comes_from_the_typed_error_in_the_chain() {
        let e = anyhow::Error::new(KonnectorError::login_failed("refused")).context("job #3");
        assert_eq!(next_step_of(&e), Some(UserAction::UpdateCredentials));
        let e = with_next_step(e, "phone");
        assert_eq!(
            e.downcast_ref::<Next>().map(|n| n.0.as_str()),
            Some("gleaner accounts edit phone --field password=")
        );
        let busy = anyhow::Error::new(SchedulerError::NoQuestion {
            account: "x".into(),
        });
        assert_eq!(next_step_of(&busy), Some(UserAction::SeeJobs));
        assert_eq!(next_step_of(&anyhow::anyhow!("plain")), None);
    }
}
