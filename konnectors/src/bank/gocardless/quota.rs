//! The bank's daily limit, per account and endpoint.
//!
//! Banks reached through GoCardless may allow as few as 4 **successful**
//! calls a day to each of an account's details, balances and transactions.
//! Every such answer says how many are left and when the window resets
//! (`HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_REMAINING` and `_RESET`, read by
//! [`super::api::RateLimits`]); the konnector keeps that in its sealed
//! session and **does not make a call it knows will be refused**. What it
//! skipped is said, with the time the next run can fetch it:
//! - some calls skipped, others made: the run succeeds, with one warning
//!   per skipped call ([`QuotaExhausted::warnings`]);
//! - nothing could be read at all: the run fails with `VENDOR_DOWN` and a
//!   `retry_after` until the earliest reset ([`QuotaExhausted::into_error`]),
//!   so the scheduler comes back then (or at the next scheduled run when
//!   that is further than it waits).
//!
//! A 429 all the same (the limit reached by another tool, or GoCardless'
//! own per-minute limits) is the HTTP client's: retried as `Retry-After`
//! says, then `VENDOR_DOWN` with the delay asked for.

use chrono::{DateTime, Utc};
use gleaner_framework::KonnectorError;

use super::api::Scope;

/// One call not made because the bank's limit was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The account's label.
    pub account: String,
    /// The endpoint.
    pub scope: Scope,
    /// When the limit resets.
    pub until: DateTime<Utc>,
}

/// The calls a run skipped for the bank's daily limit (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExhausted {
    /// The skipped calls.
    pub skipped: Vec<Skipped>,
    /// The earliest reset: when the next run can fetch something.
    pub retry_at: DateTime<Utc>,
}

impl QuotaExhausted {
    /// `None` when nothing was skipped.
    pub fn new(skipped: Vec<Skipped>) -> Option<Self> {
        let retry_at = skipped.iter().map(|s| s.until).min()?;
        Some(Self { skipped, retry_at })
    }

    /// One warning per skipped call, naming the account, the endpoint and
    /// when the next run can fetch it.
    pub fn warnings(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| {
                format!(
                    "the bank's daily limit for the {} of {} is reached; a run after {} can fetch them",
                    s.scope,
                    s.account,
                    s.until.format("%Y-%m-%d %H:%M UTC")
                )
            })
            .collect()
    }

    /// `VENDOR_DOWN` with a `retry_after` until [`QuotaExhausted::retry_at`].
    pub fn into_error(self, now: DateTime<Utc>) -> KonnectorError {
        let wait = (self.retry_at - now).to_std().unwrap_or_default();
        let what: Vec<String> = self
            .skipped
            .iter()
            .map(|s| format!("{} of {}", s.scope, s.account))
            .collect();
        KonnectorError::vendor_down(format!(
            "the bank's daily limit of calls through GoCardless is reached for every account ({}); nothing was fetched, and a run after {} can fetch again",
            what.join(", "),
            self.retry_at.format("%Y-%m-%d %H:%M UTC")
        ))
        .with_retry_after(wait)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gleaner_framework::ErrorCode;

    #[test]
    fn the_earliest_reset_is_when_to_come_back() {
        assert!(QuotaExhausted::new(Vec::new()).is_none());
        let now = DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .to_utc();
        let at = |h: i64| now + chrono::Duration::hours(h);
        let e = QuotaExhausted::new(vec![
            Skipped {
                account: "Compte courant".into(),
                scope: Scope::Transactions,
                until: at(14),
            },
            Skipped {
                account: "Livret A".into(),
                scope: Scope::Balances,
                until: at(3),
            },
        ])
        .unwrap();
        assert_eq!(e.retry_at, at(3));
        let w = e.warnings();
        assert!(
            w[0].contains("transactions of Compte courant") && w[0].contains("2026-12-01 00:00 UTC"),
            "{}",
            w[0]
        );
        let err = e.into_error(now);
        assert_eq!(err.code, ErrorCode::VendorDown);
        assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(3 * 3600)));
        assert!(err.message.contains("13:00 UTC"), "{}", err.message);
    }
}
