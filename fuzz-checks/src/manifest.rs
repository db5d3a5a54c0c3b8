//! The konnector manifest, parsed from TOML (`framework::manifest`).
//!
//! Properties: no panic; a manifest that loads is valid, serializes back to
//! TOML that loads to the same manifest, every field pattern it declares is
//! one `FieldSpec::check` understands, and its automatic schedule
//! (frequency and time window) has a next run in the window.

use chrono::{DateTime, Timelike, Utc};
use gleaner_framework::manifest::{Frequency, Manifest};
use gleaner_scheduler::plan::Schedule;

/// Checks one input of the `manifest` fuzz target: returns when the module's
/// properties hold (or the input is not one the target reads), panics
/// naming the broken one otherwise.
pub fn check_manifest(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::from_toml("fuzz.toml", s) else {
        return;
    };
    assert!(m.validate("fuzz.toml").is_ok());
    let text = toml::to_string(&m).unwrap_or_else(|e| panic!("{m:?} does not serialize: {e}"));
    let again = Manifest::from_toml("again.toml", &text)
        .unwrap_or_else(|e| panic!("{m:?} -> {text:?}: {e}"));
    assert_eq!(again, m, "{text}");
    for (name, spec) in &m.fields {
        for value in ["", "1", "12345678", "abc"] {
            if let Err(e) = spec.check(name, value) {
                assert!(!e.contains("unsupported pattern"), "{name}: {e}");
            }
        }
    }
    let now = DateTime::<Utc>::from_timestamp(1_780_000_000, 0).unwrap_or_default();
    let next = Schedule::auto("fuzz-account", m.frequency, m.time_interval)
        .next_after(now, chrono_tz::Tz::UTC)
        .unwrap_or_else(|| panic!("no next run for {:?} {:?}", m.frequency, m.time_interval));
    assert!(next > now);
    if m.frequency != Frequency::Hourly {
        let [start, end] = m.time_interval;
        let hour = next.hour();
        assert!(
            hour >= u32::from(start) && hour < u32::from(end),
            "{next} is outside {start}..{end}"
        );
    }
}
