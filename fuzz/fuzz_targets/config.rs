//! The installation's `gleaner.toml` (`scheduler::config`).
//!
//! Properties: no panic; a configuration that parses respects the limits
//! its documentation states (limits at least 1, a heartbeat of at most half
//! the lease, a window inside the day, history kept at least a day, a poll
//! of at least 10 ms).
#![no_main]

use gleaner_scheduler::SchedulerConfig;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
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
    for (k, &v) in &c.per_konnector_overrides {
        assert_eq!(c.limit_for(k), v);
    }
});
