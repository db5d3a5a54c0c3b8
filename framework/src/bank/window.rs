//! The incremental window: which days a bank konnector fetches this run.
//!
//! The first run of an account fetches `history_days` back (the account
//! field, default [`DEFAULT_HISTORY_DAYS`]); later runs fetch from the saved
//! cursor minus `lookback_days` (default [`DEFAULT_LOOKBACK_DAYS`]), which
//! catches operations the bank books late. The cursor is the `to` of the
//! last committed window; it lives in the run's state (the framework's own
//! key, see [`crate::context::FRAMEWORK_STATE_KEY`]), committed in the same
//! transaction as the operations: a crashed run keeps the old cursor.

use chrono::{NaiveDate, TimeDelta};
use serde::{Deserialize, Serialize};

use crate::error::{KonnectorError, Result};

/// How far back a first run fetches when the account does not say.
pub const DEFAULT_HISTORY_DAYS: u32 = 365;
/// How far before the cursor a later run starts when the account does not say.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 10;
/// The account field that sets the first run's history, in days.
pub const HISTORY_DAYS_FIELD: &str = "history_days";
/// The account field that sets the later runs' lookback, in days.
pub const LOOKBACK_DAYS_FIELD: &str = "lookback_days";

/// The days a run fetches for one bank account, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncWindow {
    /// The first day.
    pub from: NaiveDate,
    /// The last day (the run's today).
    pub to: NaiveDate,
    /// No run committed a cursor for this account yet.
    pub first_run: bool,
}

impl SyncWindow {
    /// Computes the window: `today - history_days` on a first run (no
    /// `cursor`), else `cursor - lookback_days`, never earlier than
    /// `today - history_days` nor later than `today`.
    pub fn compute(
        today: NaiveDate,
        cursor: Option<NaiveDate>,
        history_days: u32,
        lookback_days: u32,
    ) -> Self {
        let oldest = today - TimeDelta::days(i64::from(history_days));
        match cursor {
            None => Self {
                from: oldest,
                to: today,
                first_run: true,
            },
            Some(cursor) => Self {
                from: (cursor - TimeDelta::days(i64::from(lookback_days)))
                    .max(oldest)
                    .min(today),
                to: today,
                first_run: false,
            },
        }
    }

    /// Whether `day` is inside the window.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// Reads a day-count account field: absent or empty gives `default`; a
/// value that is not a whole number of days from 0 to `max` is refused,
/// naming the field.
pub(crate) fn days_field(value: Option<&str>, name: &str, default: u32, max: u32) -> Result<u32> {
    match value.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(KonnectorError::invalid_data(format!(
                "the account field `{name}` is `{text}`: it must be a whole number of days from 0 to {max}"
            ))),
        },
    }
}

/// The cursors' place in the framework state: `bank.cursors.<vendorAccountId>`.
pub(crate) fn cursor_of(
    framework: &serde_json::Map<String, serde_json::Value>,
    vendor_account_id: &str,
) -> Option<NaiveDate> {
    framework
        .get("bank")?
        .get("cursors")?
        .get(vendor_account_id)?
        .as_str()
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// Sets an account's cursor in the framework state.
pub(crate) fn set_cursor(
    framework: &mut serde_json::Map<String, serde_json::Value>,
    vendor_account_id: &str,
    day: NaiveDate,
) {
    let bank = framework
        .entry("bank")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !bank.is_object() {
        *bank = serde_json::Value::Object(serde_json::Map::new());
    }
    let Some(bank) = bank.as_object_mut() else {
        return;
    };
    let cursors = bank
        .entry("cursors")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !cursors.is_object() {
        *cursors = serde_json::Value::Object(serde_json::Map::new());
    }
    if let Some(cursors) = cursors.as_object_mut() {
        cursors.insert(
            vendor_account_id.to_owned(),
            serde_json::Value::String(day.format("%Y-%m-%d").to_string()),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn first_run_goes_back_the_history_later_runs_from_the_cursor() {
        let today = d(2026, 3, 20);
        let w = SyncWindow::compute(today, None, 365, 10);
        assert_eq!((w.from, w.to, w.first_run), (d(2025, 3, 20), today, true));
        let w = SyncWindow::compute(today, Some(d(2026, 3, 13)), 365, 10);
        assert_eq!((w.from, w.to, w.first_run), (d(2026, 3, 3), today, false));
        // A cursor from long ago is bounded by the history.
        let w = SyncWindow::compute(today, Some(d(2020, 1, 1)), 90, 10);
        assert_eq!(w.from, d(2025, 12, 20));
        // A cursor in the future (clock moved back) gives an empty-ish window.
        let w = SyncWindow::compute(today, Some(d(2026, 6, 1)), 365, 0);
        assert_eq!(w.from, today);
        assert!(w.contains(today) && !w.contains(d(2026, 3, 21)));
    }

    #[test]
    fn day_fields_default_and_refuse_nonsense() {
        assert_eq!(days_field(None, "history_days", 365, 3650).unwrap(), 365);
        assert_eq!(
            days_field(Some(" 90 "), "history_days", 365, 3650).unwrap(),
            90
        );
        let err = days_field(Some("-3"), "lookback_days", 10, 365).unwrap_err();
        assert!(err.message.contains("lookback_days"), "{}", err.message);
        assert!(days_field(Some("9999"), "lookback_days", 10, 365).is_err());
    }

    #[test]
    fn cursors_live_under_bank_cursors() {
        let mut fw = serde_json::Map::new();
        assert_eq!(cursor_of(&fw, "A"), None);
        set_cursor(&mut fw, "A", d(2026, 1, 2));
        set_cursor(&mut fw, "B", d(2026, 1, 3));
        assert_eq!(cursor_of(&fw, "A"), Some(d(2026, 1, 2)));
        assert_eq!(
            serde_json::Value::Object(fw),
            serde_json::json!({"bank": {"cursors": {"A": "2026-01-02", "B": "2026-01-03"}}})
        );
    }
}
