//! The installation's `gleaner.toml` (`scheduler::config`).
//!
//! Properties: no panic; a configuration that parses respects the limits
//! its documentation states (limits at least 1, a heartbeat of at most half
//! the lease, a window inside the day, history kept at least a day, a poll
//! of at least 10 ms), and its times are small enough for the sums the
//! scheduler makes with them (now minus the retention, now plus the lease,
//! twice the poll plus a minute).

use gleaner_scheduler::SchedulerConfig;
use gleaner_scheduler::config::MAX_SECS;
use gleaner_scheduler::queue::to_chrono;
use std::time::Duration;

/// Checks one input of the `config` fuzz target: returns when the module's
/// properties hold (or the input is not one the target reads), panics
/// naming the broken one otherwise.
pub fn check_config(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = SchedulerConfig::parse(s) else {
        return;
    };
    assert!(c.concurrency >= 1 && c.per_konnector >= 1 && c.max_attempts >= 1);
    assert!(c.per_konnector_overrides.values().all(|&v| v >= 1));
    assert!(!c.heartbeat.is_zero());
    assert!(
        c.heartbeat <= c.lease / 2 + Duration::from_nanos(1),
        "{c:?}"
    );
    if let Some([start, end]) = c.window {
        assert!(start < end && end <= 24, "{c:?}");
    }
    assert!(c.retention >= chrono::Duration::days(1), "{c:?}");
    assert!(c.poll >= Duration::from_millis(10), "{c:?}");
    // Times stay small enough for the sums the scheduler makes with them.
    for d in [
        c.retry_base,
        c.retry_max,
        c.lease,
        c.heartbeat,
        c.grace,
        c.twofa_wait,
        c.twofa_wait_automatic,
    ] {
        assert!(d.as_secs() <= MAX_SECS, "{c:?}");
    }
    let now = chrono::Utc::now();
    assert!(now.checked_sub_signed(c.retention).is_some(), "{c:?}");
    assert!(
        now.checked_add_signed(to_chrono(c.lease)).is_some(),
        "{c:?}"
    );
    let catch_up = c
        .poll
        .checked_mul(2)
        .map(to_chrono)
        .and_then(|d| d.checked_add(&chrono::Duration::seconds(60)));
    assert!(catch_up.is_some(), "{c:?}");
    for (k, &v) in &c.per_konnector_overrides {
        assert_eq!(c.limit_for(k), v);
    }
}
