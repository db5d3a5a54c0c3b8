//! Second factors asked in the terminal, for `gleaner run` by hand.
//!
//! [`channel`] picks the run's [`TwoFactorChannel`]: a [`TerminalPrompt`]
//! when standard input is a terminal (someone is there to type the code);
//! otherwise none, and the scheduler's job waits in `awaiting_user` for
//! `gleaner 2fa <account> <code>` (see `gleaner_scheduler::twofa`).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use gleaner_framework::{
    ErrorCode, KonnectorError, Secret, TwoFactorChannel, TwoFactorKind, TwoFactorRequest,
    async_trait,
};
use indicatif::ProgressBar;

/// The channel for a run started from this process: the terminal when
/// standard input is one; `None` otherwise (the job waits for `gleaner 2fa`).
pub fn channel(provider: &str, bar: &ProgressBar) -> Option<Arc<dyn TwoFactorChannel>> {
    std::io::stdin().is_terminal().then(|| {
        Arc::new(TerminalPrompt::new(provider, Some(bar.clone()))) as Arc<dyn TwoFactorChannel>
    })
}

/// Asks for the code on the terminal (the question on standard error, the
/// answer from standard input), with the run's progress bar hidden meanwhile.
pub struct TerminalPrompt {
    provider: String,
    bar: Option<ProgressBar>,
}

impl TerminalPrompt {
    /// A prompt naming `provider` (the konnector's name, "Free Mobile"),
    /// suspending `bar` while it waits.
    pub fn new(provider: &str, bar: Option<ProgressBar>) -> Self {
        Self {
            provider: provider.to_owned(),
            bar,
        }
    }
}

/// The question shown for `request`, ending with "Code for <label>: ".
pub fn question(provider: &str, request: &TwoFactorRequest) -> String {
    let retry = if request.attempt > 1 {
        "That code was refused. "
    } else {
        ""
    };
    let to = request
        .hint
        .as_deref()
        .map(|h| format!(" to {h}"))
        .unwrap_or_default();
    let label = &request.account_label;
    match request.kind {
        TwoFactorKind::Email => {
            format!("{retry}{provider} sent a code by email{to}. Code for {label}: ")
        }
        TwoFactorKind::Sms => {
            format!("{retry}{provider} sent a code by SMS{to}. Code for {label}: ")
        }
        TwoFactorKind::AppCode => format!(
            "{retry}{provider} asks for the code of your authenticator app. Code for {label}: "
        ),
        TwoFactorKind::App => format!(
            "{retry}{provider} asks you to approve this login in its app. Press Enter once done ({label}): "
        ),
        TwoFactorKind::Redirect => format!(
            "{retry}{provider} asks you to open this link and give access at your bank:\n{}\nPress Enter once done ({label}): ",
            request
                .hint
                .as_deref()
                .unwrap_or("(the provider gave no link)")
        ),
    }
}

#[async_trait]
impl TwoFactorChannel for TerminalPrompt {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        let question = question(&self.provider, request);
        let bar = self.bar.clone();
        let read = move || -> std::io::Result<String> {
            let mut stderr = std::io::stderr().lock();
            stderr.write_all(question.as_bytes())?;
            stderr.flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Ok(line)
        };
        // Reading a terminal blocks: not on the async workers. The bar is
        // hidden (and its ticker held) until the line is read.
        let answer = tokio::task::spawn_blocking(move || match bar {
            Some(bar) => bar.suspend(read),
            None => read(),
        })
        .await;
        let expired =
            |why: String| KonnectorError::new(ErrorCode::UserActionNeededTwofaExpired, why);
        let line = match answer {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                return Err(expired(format!(
                    "cannot read the code from the terminal: {e}"
                )));
            }
            Err(e) => return Err(expired(format!("the terminal prompt stopped: {e}"))),
        };
        let code = line.trim();
        if code.is_empty() && !matches!(request.kind, TwoFactorKind::App | TwoFactorKind::Redirect)
        {
            return Err(expired(format!(
                "no {} code was typed for account {}",
                request.kind, request.account_label
            )));
        }
        Ok(Secret::new(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: TwoFactorKind, hint: Option<&str>, attempt: u32) -> TwoFactorRequest {
        TwoFactorRequest {
            account_id: "a1".into(),
            account_label: "mine".into(),
            konnector: "free-mobile".into(),
            kind,
            hint: hint.map(str::to_owned),
            attempt,
        }
    }

    #[test]
    fn the_question_names_the_provider_the_destination_and_the_account() {
        assert_eq!(
            question(
                "Free Mobile",
                &request(TwoFactorKind::Email, Some("j***@example.org"), 1)
            ),
            "Free Mobile sent a code by email to j***@example.org. Code for mine: "
        );
        assert_eq!(
            question("Free Mobile", &request(TwoFactorKind::Sms, None, 2)),
            "That code was refused. Free Mobile sent a code by SMS. Code for mine: "
        );
        assert!(
            question("Bank", &request(TwoFactorKind::AppCode, None, 1))
                .ends_with("Code for mine: ")
        );
        assert!(question("Bank", &request(TwoFactorKind::App, None, 1)).contains("Press Enter"));
        let q = question(
            "Bank",
            &request(
                TwoFactorKind::Redirect,
                Some("https://ob.example/start/1"),
                1,
            ),
        );
        assert!(
            q.contains("\nhttps://ob.example/start/1\n") && q.contains("Press Enter"),
            "{q}"
        );
    }
}
