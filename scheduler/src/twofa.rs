//! The second-factor channel of runs that no terminal watches: the job
//! enters `awaiting_user` and the run waits, up to a timeout, for a code
//! given with `gleaner 2fa <account> <code>` (from any process on the same
//! store). The code travels sealed by the vault, bound to the account.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gleaner_framework::twofa::Unattended;
use gleaner_framework::vault::Vault;
use gleaner_framework::{
    ErrorCode, KonnectorError, Secret, TwoFactorChannel, TwoFactorKind, TwoFactorRequest,
};

use crate::queue::{JobQueue, to_chrono};

/// The associated data that binds a sealed code to its account.
fn aad(account_id: &str) -> String {
    format!("{account_id}/2fa")
}

/// Gives a sealed code to the account's run that waits for one
/// ([`JobQueue::give_answer`]). A run between two questions (it just sent a
/// refused code to the provider) is briefly `running`: while one is, this
/// waits a little (at most 10 s) for it to ask again. Returns the job's
/// id, or [`crate::SchedulerError::NoQuestion`] when no run waits.
pub async fn give_code(
    queue: &dyn JobQueue,
    account_id: &str,
    sealed: &[u8],
) -> crate::Result<i64> {
    let mut given = queue.give_answer(account_id, sealed).await;
    for _ in 0..50 {
        if given.is_ok() {
            break;
        }
        let running = queue
            .jobs(&crate::queue::JobFilter {
                account_id: Some(account_id.to_owned()),
                states: vec![crate::JobState::Running],
                limit: 1,
                ..crate::queue::JobFilter::default()
            })
            .await?;
        if running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        given = queue.give_answer(account_id, sealed).await;
    }
    given
}

/// Seals a code for [`JobQueue::give_answer`].
pub fn seal_code(vault: &Vault, account_id: &str, code: &str) -> Result<Vec<u8>, KonnectorError> {
    let mut m = BTreeMap::new();
    m.insert("code".to_owned(), Secret::new(code.trim()));
    vault.seal(&aad(account_id), &m)
}

/// Waits for `gleaner 2fa` through the job queue.
pub struct QueueTwoFactor {
    /// The queue.
    pub queue: Arc<dyn JobQueue>,
    /// The job that asks.
    pub job_id: i64,
    /// The vault that opens the code.
    pub vault: Arc<Vault>,
    /// How long to wait (zero: do not wait, fail as unattended).
    pub wait: Duration,
    /// How often to look for the answer.
    pub poll: Duration,
}

#[async_trait]
impl TwoFactorChannel for QueueTwoFactor {
    fn attended(&self) -> bool {
        !self.wait.is_zero()
    }

    async fn ask(&self, request: &TwoFactorRequest) -> gleaner_framework::Result<Secret> {
        if self.wait.is_zero() {
            return Unattended.ask(request).await;
        }
        let deadline = self.queue.now() + to_chrono(self.wait);
        self.queue
            .set_awaiting(
                self.job_id,
                request.kind.as_str(),
                request.hint.as_deref(),
                deadline,
            )
            .await
            .map_err(store_err)?;
        tracing::warn!(
            job = self.job_id,
            kind = %request.kind,
            attempt = request.attempt,
            account = %request.account_label,
            next = %gleaner_framework::UserAction::AnswerTwoFactor,
            "waiting for a second-factor code"
        );
        let started = tokio::time::Instant::now();
        loop {
            if let Some(sealed) = self
                .queue
                .take_answer(self.job_id)
                .await
                .map_err(store_err)?
            {
                self.queue
                    .set_running(self.job_id)
                    .await
                    .map_err(store_err)?;
                let mut opened = self.vault.open(&aad(&request.account_id), &sealed)?;
                return opened.remove("code").ok_or_else(|| {
                    KonnectorError::new(
                        ErrorCode::UserActionNeededWrongTwofaCode,
                        "the code given was empty",
                    )
                });
            }
            if started.elapsed() >= self.wait {
                self.queue
                    .set_running(self.job_id)
                    .await
                    .map_err(store_err)?;
                let what = match request.kind {
                    TwoFactorKind::App => "approval in the provider's app",
                    TwoFactorKind::Redirect => "approval at the link it gave",
                    _ => "code",
                };
                return Err(KonnectorError::new(
                    ErrorCode::UserActionNeededTwofaExpired,
                    format!(
                        "{} asked for a {} {what} and none came within {} s",
                        request.konnector,
                        request.kind,
                        self.wait.as_secs(),
                    ),
                )
                .with_next(gleaner_framework::UserAction::AnswerTwoFactor));
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

fn store_err(e: crate::SchedulerError) -> KonnectorError {
    match e {
        crate::SchedulerError::Store(k) => k,
        other => KonnectorError::store(other.to_string()),
    }
}
