//! What happens after a run fails: the retry policy, by the error's source,
//! then its code ([`after_error`]).
//!
//! - a failure of this machine's vault or store
//!   ([`KonnectorError::is_local`]: its source is the vault or the store) is
//!   neither retried nor a block, whatever its code: a vault that does not
//!   open the credentials is not the person's wrong password, and even a
//!   code path that labelled it `LOGIN_FAILED.NEEDS_SECRET` by mistake does
//!   not pause the account; the next scheduled run tries again;
//! - transient errors ([`ErrorCode::is_retryable`]: `VENDOR_DOWN`,
//!   `VENDOR_DOWN.TIMEOUT`, `MAINTENANCE`, `FILE_DOWNLOAD_FAILED`) are
//!   retried with exponential backoff (base, 2 x base, 4 x base, ... up to
//!   the cap) and equal jitter (half the delay fixed, half random), never
//!   sooner than the provider's `Retry-After`, until the job has run
//!   `max_attempts` times;
//! - errors that need the person (`LOGIN_FAILED*`, `USER_ACTION_NEEDED.*`,
//!   `CHALLENGE_ASKED`) are never retried, and **block** the account's
//!   automatic runs until its credentials change or a manual run succeeds,
//!   so a wrong password is not replayed night after night until the
//!   provider locks the account;
//! - anything else (changed markup, invalid data, ...) is not retried: the
//!   next scheduled run tries again.

use std::time::Duration;

use gleaner_framework::{ErrorCode, KonnectorError};

use crate::config::SchedulerConfig;

/// What to do after a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Run again after this delay.
    Retry(Duration),
    /// Stop; the next scheduled run will try.
    GiveUp,
    /// Stop and skip automatic runs until the person acts.
    BlockAccount,
}

/// The longest `Retry-After` honoured; beyond it the job gives up and the
/// next scheduled run tries.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// Decides what follows the failure `error` of execution number `attempt`
/// (1 for the first): on its source first (a vault or store failure gives
/// up, never blocks), then on its code and `Retry-After`
/// ([`after_failure`]). `jitter` is a number in `[0, 1)`, random in
/// production.
pub fn after_error(
    error: &KonnectorError,
    attempt: u32,
    config: &SchedulerConfig,
    jitter: f64,
) -> AfterFailure {
    if error.is_local() {
        return AfterFailure::GiveUp;
    }
    after_failure(error.code, attempt, error.retry_after, config, jitter)
}

/// Decides, from the code alone, what follows the failure of execution
/// number `attempt` (1 for the first). `jitter` is a number in `[0, 1)`,
/// random in production. A run's failure goes through [`after_error`],
/// which reads the error's source first.
pub fn after_failure(
    code: ErrorCode,
    attempt: u32,
    retry_after: Option<Duration>,
    config: &SchedulerConfig,
    jitter: f64,
) -> AfterFailure {
    if code.needs_user() {
        return AfterFailure::BlockAccount;
    }
    if !code.is_retryable() || attempt >= config.max_attempts {
        return AfterFailure::GiveUp;
    }
    if retry_after.is_some_and(|r| r > MAX_RETRY_AFTER) {
        return AfterFailure::GiveUp;
    }
    let delay = backoff(attempt, config, jitter);
    AfterFailure::Retry(retry_after.map_or(delay, |r| r.max(delay)))
}

/// The delay before execution `attempt + 1`: `base x 2^(attempt-1)`, capped,
/// with equal jitter.
pub fn backoff(attempt: u32, config: &SchedulerConfig, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = config
        .retry_base
        .saturating_mul(1u32 << exp)
        .min(config.retry_max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SchedulerConfig {
        SchedulerConfig {
            max_attempts: 5,
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(600),
            ..SchedulerConfig::default()
        }
    }

    #[test]
    fn transient_errors_back_off_exponentially_with_jitter_up_to_the_cap() {
        let c = config();
        let delays: Vec<(Duration, Duration)> = (1..=4)
            .map(|a| (backoff(a, &c, 0.0), backoff(a, &c, 0.999_999)))
            .collect();
        let secs = |d: Duration| d.as_secs_f64().round() as u64;
        let got: Vec<(u64, u64)> = delays
            .iter()
            .map(|(lo, hi)| (secs(*lo), secs(*hi)))
            .collect();
        // 60 s, 120 s, 240 s, then 480 s, each between half and all of it.
        assert_eq!(got, vec![(30, 60), (60, 120), (120, 240), (240, 480)]);
        assert_eq!(
            backoff(9, &c, 0.0),
            Duration::from_secs(300),
            "capped at 600 s"
        );
        assert_eq!(
            after_failure(ErrorCode::VendorDown, 1, None, &c, 0.5),
            AfterFailure::Retry(Duration::from_secs(45))
        );
        assert_eq!(
            after_failure(ErrorCode::Timeout, 2, None, &c, 0.0),
            AfterFailure::Retry(Duration::from_secs(60))
        );
    }

    #[test]
    fn retry_after_is_honoured_and_attempts_are_capped() {
        let c = config();
        assert_eq!(
            after_failure(
                ErrorCode::VendorDown,
                1,
                Some(Duration::from_secs(900)),
                &c,
                0.0
            ),
            AfterFailure::Retry(Duration::from_secs(900))
        );
        assert_eq!(
            after_failure(
                ErrorCode::VendorDown,
                1,
                Some(Duration::from_secs(5)),
                &c,
                0.0
            ),
            AfterFailure::Retry(Duration::from_secs(30))
        );
        assert_eq!(
            after_failure(ErrorCode::VendorDown, 1, Some(MAX_RETRY_AFTER * 2), &c, 0.0),
            AfterFailure::GiveUp
        );
        assert_eq!(
            after_failure(ErrorCode::Maintenance, 5, None, &c, 0.0),
            AfterFailure::GiveUp
        );
    }

    #[test]
    fn credentials_errors_block_and_page_changes_give_up() {
        let c = config();
        for code in [
            ErrorCode::LoginFailed,
            ErrorCode::UserActionNeededTwofaExpired,
            ErrorCode::UserActionNeededOauthOutdated,
            ErrorCode::ChallengeAsked,
        ] {
            assert_eq!(
                after_failure(code, 1, None, &c, 0.0),
                AfterFailure::BlockAccount
            );
        }
        assert_eq!(
            after_failure(ErrorCode::PageChanged, 1, None, &c, 0.0),
            AfterFailure::GiveUp
        );
    }

    #[test]
    fn the_source_decides_before_the_code() {
        use gleaner_framework::{ErrorSource, SourceKind};
        let c = config();
        // A vault or store failure, even mislabelled with a code that
        // needs the person or one that is transient: no block, no retry.
        for code in [
            ErrorCode::LoginFailedNeedsSecret,
            ErrorCode::LoginFailed,
            ErrorCode::UserActionNeededOauthOutdated,
            ErrorCode::VendorDown,
        ] {
            for kind in [SourceKind::Vault, SourceKind::Store] {
                let e =
                    KonnectorError::new(code, "mislabelled").with_source(ErrorSource::new(kind));
                assert_eq!(
                    after_error(&e, 1, &c, 0.0),
                    AfterFailure::GiveUp,
                    "{code} from {kind}"
                );
            }
        }
        assert_eq!(
            after_error(&KonnectorError::vault("no key"), 1, &c, 0.0),
            AfterFailure::GiveUp
        );
        assert_eq!(
            after_error(&KonnectorError::store("locked"), 1, &c, 0.0),
            AfterFailure::GiveUp
        );
        // Without a local source the code decides, as before.
        let missing = KonnectorError::new(ErrorCode::LoginFailedNeedsSecret, "no password");
        assert_eq!(
            after_error(&missing, 1, &c, 0.0),
            AfterFailure::BlockAccount
        );
        let refused = KonnectorError::login_failed("wrong password")
            .with_source(ErrorSource::new(SourceKind::Provider));
        assert_eq!(
            after_error(&refused, 1, &c, 0.0),
            AfterFailure::BlockAccount
        );
        let down =
            KonnectorError::vendor_down("503").with_source(ErrorSource::new(SourceKind::Provider));
        assert_eq!(
            after_error(&down, 1, &c, 0.5),
            AfterFailure::Retry(Duration::from_secs(45))
        );
    }
}
