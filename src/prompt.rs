//! The terminal's second-factor prompt, for `gleaner run` in a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use gleaner_framework::{
    ErrorCode, KonnectorError, Secret, TwoFactorChannel, TwoFactorKind, TwoFactorRequest,
    async_trait,
};
use indicatif::ProgressBar;

/// Asks in the terminal, pausing the progress bar while the person types.
pub struct TerminalPrompt {
    bar: ProgressBar,
}

#[async_trait]
impl TwoFactorChannel for TerminalPrompt {
    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        let question = match (request.kind, &request.hint) {
            (TwoFactorKind::App, _) => format!(
                "{} asks you to approve this login in its app; press Enter once done: ",
                request.konnector
            ),
            (kind, Some(hint)) => format!(
                "{} sent a code ({kind}) to {hint}. Code for {}{}: ",
                request.konnector,
                request.account_label,
                if request.attempt > 1 {
                    " (the last one was refused)"
                } else {
                    ""
                }
            ),
            (kind, None) => format!(
                "{} asks for a {kind} code. Code for {}: ",
                request.konnector, request.account_label
            ),
        };
        let bar = self.bar.clone();
        tokio::task::spawn_blocking(move || bar.suspend(|| rpassword::prompt_password(question)))
            .await
            .map_err(|e| {
                KonnectorError::new(ErrorCode::UnknownError, format!("the prompt failed: {e}"))
            })?
            .map(Secret::new)
            .map_err(|e| {
                KonnectorError::new(
                    ErrorCode::UserActionNeededTwofaExpired,
                    format!("cannot read the code from the terminal: {e}"),
                )
            })
    }
}

/// The prompt when standard input is a terminal; `None` otherwise (the job
/// then waits for `gleaner 2fa`).
pub fn channel(bar: &ProgressBar) -> Option<Arc<dyn TwoFactorChannel>> {
    std::io::stdin()
        .is_terminal()
        .then(|| Arc::new(TerminalPrompt { bar: bar.clone() }) as Arc<dyn TwoFactorChannel>)
}
