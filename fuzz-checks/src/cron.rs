//! Cron overrides (`gleaner trigger --cron`, `scheduler::plan`).
//!
//! Properties: no panic; an expression that parses has a next run after
//! now (in UTC, and in timezones with DST, half-hour DST and a 45-minute
//! offset), later runs come strictly later, and a plain minute or hour
//! field is the run's minute or hour; an expression that is refused says
//! so in crontab's terms, quoting the person's expression and never the
//! 6-field form handed to the `cron` crate.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use gleaner_scheduler::plan::Schedule;

/// Checks one input of the `cron` fuzz target: returns when the module's
/// properties hold (or the input is not one the target reads), panics
/// naming the broken one otherwise.
pub fn check_cron(data: &[u8]) {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    let schedule = match Schedule::cron(expr) {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(expr.trim()), "{message}");
            assert!(!message.contains("Seconds"), "{message}");
            return;
        }
    };
    // 2026-03-29: spring forward in Europe.
    let now = DateTime::<Utc>::from_timestamp(1_774_742_400, 0).unwrap_or_default();
    let next = schedule
        .next_after(now, Tz::UTC)
        .unwrap_or_else(|| panic!("`{expr}` parses but never runs"));
    assert!(next > now);
    let after = schedule
        .next_after(next, Tz::UTC)
        .unwrap_or_else(|| panic!("`{expr}` runs once only"));
    assert!(after > next);
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() == 5 {
        if let Ok(minute) = fields[0].parse::<u32>() {
            assert_eq!(next.minute(), minute, "`{expr}`: {next}");
        }
        if let Ok(hour) = fields[1].parse::<u32>() {
            assert_eq!(next.hour(), hour, "`{expr}`: {next}");
        }
    }
    for tz in [
        Tz::Europe__Paris,
        Tz::Australia__Lord_Howe,
        Tz::Asia__Kathmandu,
    ] {
        if let Some(t) = schedule.next_after(now, tz) {
            assert!(t > now, "`{expr}` in {tz}: {t}");
        }
    }
}
