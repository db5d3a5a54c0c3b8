//! When each account runs: automatic slots and cron overrides.
//!
//! An account's automatic trigger follows its konnector's manifest
//! (`frequency`, `time_interval`) and a **slot** derived from the account
//! id. The slot is a SHA-256 of the id, so it is stable across restarts and
//! machines, and spread evenly: unlike Cozy, which seeds by konnector slug
//! and puts every account of a provider on the same minute, two accounts of
//! one provider almost never share a minute (see the spread test).
//! - hourly: one minute of every hour (the window does not apply);
//! - daily: one minute inside the window, every day;
//! - weekly: that minute on one weekday;
//! - monthly: that minute on one day of the month, between the 1st and the
//!   28th so every month has it.
//!
//! A person may replace the automatic trigger with a cron expression in the
//! usual **5-field** form `minute hour day-of-month month day-of-week`
//! (`30 2 * * *`, `0 3 * * 1-5`, `15 */6 * * *`, names such as `MON` or
//! `JAN`, and `@daily`-style aliases). Day-of-week numbers follow crontab(5):
//! 0 and 7 are Sunday. When both day fields are restricted, a day must match
//! **both** (crontab matches either). Parsing is the `cron` crate's; this
//! module only adds the seconds field it requires and maps crontab's
//! weekday numbers onto names, since that crate counts Sunday as 1.
//!
//! Slots and cron expressions are local times in the installation's
//! timezone. A slot that falls in a DST gap moves one hour later; in a DST
//! overlap it runs once, at the first occurrence.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use gleaner_framework::manifest::Frequency;
use sha2::{Digest, Sha256};

use crate::error::{Result, SchedulerError};

/// An account's place in its konnector's window, derived from its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Minutes from the start of the window, before reduction to the
    /// window's length.
    pub minute_seed: u32,
    /// Day of the week, 0 = Monday.
    pub weekday: u32,
    /// Day of the month, 1 to 28.
    pub month_day: u32,
}

impl Slot {
    /// The slot of an account.
    pub fn of(account_id: &str) -> Self {
        let digest = Sha256::digest(account_id.as_bytes());
        let word =
            |i: usize| u32::from_le_bytes([digest[i], digest[i + 1], digest[i + 2], digest[i + 3]]);
        Self {
            minute_seed: word(0),
            weekday: word(4) % 7,
            month_day: word(8) % 28 + 1,
        }
    }
}

/// How one account is scheduled.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// The automatic trigger from the manifest.
    Auto {
        /// How often.
        frequency: Frequency,
        /// The window `[start_hour, end_hour)`.
        window: [u8; 2],
        /// The account's slot.
        slot: Slot,
    },
    /// A person's cron expression.
    Cron {
        /// The expression as given (5 fields).
        expr: String,
        /// The parsed schedule.
        schedule: Box<cron::Schedule>,
    },
}

impl Schedule {
    /// The automatic schedule of an account.
    pub fn auto(account_id: &str, frequency: Frequency, window: [u8; 2]) -> Self {
        Self::Auto {
            frequency,
            window,
            slot: Slot::of(account_id),
        }
    }

    /// A cron schedule from a 5-field expression.
    pub fn cron(expr: &str) -> Result<Self> {
        Ok(Self::Cron {
            expr: expr.trim().to_owned(),
            schedule: Box::new(parse_cron(expr)?),
        })
    }

    /// A short description for `gleaner schedule`.
    pub fn describe(&self) -> String {
        match self {
            Self::Cron { expr, .. } => format!("cron `{expr}`"),
            Self::Auto {
                frequency,
                window,
                slot,
            } => {
                let (h, m) = slot_time(*window, *slot);
                match frequency {
                    Frequency::Hourly => format!("hourly at :{:02}", slot.minute_seed % 60),
                    Frequency::Daily => format!("daily at {h:02}:{m:02}"),
                    Frequency::Weekly => format!(
                        "weekly, {} at {h:02}:{m:02}",
                        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
                            [slot.weekday as usize % 7]
                    ),
                    Frequency::Monthly => {
                        format!("monthly, day {} at {h:02}:{m:02}", slot.month_day)
                    }
                }
            }
        }
    }

    /// The first run strictly after `after`, in UTC.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron { schedule, .. } => schedule
                .after(&after.with_timezone(&tz))
                .next()
                .map(|t| t.with_timezone(&Utc)),
            Self::Auto {
                frequency: Frequency::Hourly,
                slot,
                ..
            } => {
                let minute = i64::from(slot.minute_seed % 60);
                let local = after.with_timezone(&tz);
                // Whole hours in UTC: every timezone's offset is a multiple
                // of 15 minutes, and hourly runs need no local calendar.
                let base = after
                    - Duration::minutes(i64::from(local.minute()))
                    - Duration::seconds(i64::from(local.second()))
                    - Duration::nanoseconds(i64::from(local.nanosecond()));
                (0..3)
                    .map(|h| base + Duration::hours(h) + Duration::minutes(minute))
                    .find(|t| *t > after)
            }
            Self::Auto {
                frequency,
                window,
                slot,
            } => {
                let (h, m) = slot_time(*window, *slot);
                let time = NaiveTime::from_hms_opt(h, m, 0)?;
                let start = after.with_timezone(&tz).date_naive() - Duration::days(1);
                (0..62)
                    .map(|d| start + Duration::days(d))
                    .filter(|day| match frequency {
                        Frequency::Weekly => day.weekday().num_days_from_monday() == slot.weekday,
                        Frequency::Monthly => day.day() == slot.month_day,
                        _ => true,
                    })
                    .filter_map(|day| local_to_utc(tz, day, time))
                    .find(|t| *t > after)
            }
        }
    }
}

/// The local hour and minute of a slot inside a window.
fn slot_time(window: [u8; 2], slot: Slot) -> (u32, u32) {
    let [start, end] = window;
    let len = (u32::from(end.max(start + 1)) - u32::from(start)) * 60;
    let offset = slot.minute_seed % len;
    (u32::from(start) + offset / 60, offset % 60)
}

/// A local date and time as UTC: the earlier one in an overlap, one hour
/// later in a gap.
fn local_to_utc(tz: Tz, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let naive = day.and_time(time);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// Parses a crontab-style 5-field expression (or an `@` alias).
pub fn parse_cron(expr: &str) -> Result<cron::Schedule> {
    let bad = |reason: String| SchedulerError::Cron {
        expr: expr.trim().to_owned(),
        reason,
    };
    let expr = expr.trim();
    let full = if expr.starts_with('@') {
        match expr {
            "@hourly" | "@daily" | "@midnight" | "@weekly" | "@monthly" | "@yearly"
            | "@annually" => expr.to_owned(),
            _ => return Err(bad("unknown alias".into())),
        }
    } else {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(bad(format!("it has {} fields, not 5", fields.len())));
        }
        let dow = crontab_weekdays(fields[4]).map_err(bad)?;
        format!(
            "0 {} {} {} {} {dow}",
            fields[0], fields[1], fields[2], fields[3]
        )
    };
    cron::Schedule::from_str(&full).map_err(|e| bad(e.to_string()))
}

/// Rewrites crontab weekday numbers (0 or 7 = Sunday) as names, which the
/// `cron` crate reads unambiguously.
fn crontab_weekdays(field: &str) -> Result<String, String> {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let name = |n: &str| -> Result<String, String> {
        match n.parse::<usize>() {
            Ok(i) if i < NAMES.len() => Ok(NAMES[i].to_owned()),
            Ok(i) => Err(format!("day of week {i} is not between 0 and 7")),
            Err(_) => Ok(n.to_owned()),
        }
    };
    field
        .split(',')
        .map(|part| {
            let (base, step) = match part.split_once('/') {
                Some((b, s)) => (b, Some(s)),
                None => (part, None),
            };
            let base = match base.split_once('-') {
                // 1-7 (Monday to Sunday) would become MON-SUN, a backwards
                // range: crontab means every day from Monday.
                Some((a, "7")) => format!("{}-SAT,SUN", name(a)?),
                Some((a, b)) => format!("{}-{}", name(a)?, name(b)?),
                None => name(base)?,
            };
            Ok(match step {
                Some(s) => format!("{base}/{s}"),
                None => base,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|parts| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;
    use std::collections::HashMap;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test date")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_thousand_accounts_of_one_konnector_spread_over_the_window() {
        // Cozy would put all 1,000 on one minute. The stated bound: no
        // minute of the 300-minute window holds more than 1.5 % of them.
        let mut per_minute: HashMap<DateTime<Utc>, usize> = HashMap::new();
        let after = at("2026-11-23T12:00:00Z");
        for i in 0..1000 {
            let s = Schedule::auto(&format!("account-{i}"), Frequency::Daily, [0, 5]);
            let next = s.next_after(after, Tz::UTC).expect("a next run");
            assert!(next > after && next < at("2026-11-24T05:00:00Z"), "{next}");
            assert!(next >= at("2026-11-24T00:00:00Z"), "{next}");
            *per_minute.entry(next).or_default() += 1;
        }
        let max = per_minute.values().copied().max().unwrap_or(0);
        assert!(max <= 15, "one minute holds {max} of 1,000 accounts");
        assert!(
            per_minute.len() > 250,
            "only {} minutes used",
            per_minute.len()
        );
    }

    #[test]
    fn weekly_and_monthly_slots_spread_across_days() {
        let after = at("2026-11-23T12:00:00Z");
        let mut weekdays: HashMap<Weekday, usize> = HashMap::new();
        let mut month_days: HashMap<u32, usize> = HashMap::new();
        for i in 0..1000 {
            let id = format!("account-{i}");
            let w = Schedule::auto(&id, Frequency::Weekly, [0, 5])
                .next_after(after, Tz::UTC)
                .expect("weekly");
            *weekdays.entry(w.weekday()).or_default() += 1;
            let m = Schedule::auto(&id, Frequency::Monthly, [0, 5])
                .next_after(after, Tz::UTC)
                .expect("monthly");
            assert!(m.day() <= 28);
            *month_days.entry(m.day()).or_default() += 1;
        }
        assert_eq!(weekdays.len(), 7);
        assert!(
            weekdays.values().all(|&n| (90..=200).contains(&n)),
            "{weekdays:?}"
        );
        assert_eq!(month_days.len(), 28);
        assert!(month_days.values().all(|&n| n <= 70), "{month_days:?}");
    }

    #[test]
    fn a_slot_is_stable_and_next_runs_are_a_day_apart() {
        let s = Schedule::auto("acc-42", Frequency::Daily, [1, 6]);
        let first = s
            .next_after(at("2026-11-23T12:00:00Z"), Tz::UTC)
            .expect("first");
        let second = s.next_after(first, Tz::UTC).expect("second");
        assert_eq!(second - first, Duration::days(1));
        assert_eq!(Slot::of("acc-42"), Slot::of("acc-42"));
        let again = Schedule::auto("acc-42", Frequency::Daily, [1, 6])
            .next_after(at("2026-11-23T12:00:00Z"), Tz::UTC);
        assert_eq!(again, Some(first));
    }

    #[test]
    fn hourly_runs_every_hour_at_the_slot_minute() {
        let s = Schedule::auto("acc-h", Frequency::Hourly, [0, 5]);
        let a = s
            .next_after(at("2026-11-23T12:00:00Z"), Tz::UTC)
            .expect("a");
        let b = s.next_after(a, Tz::UTC).expect("b");
        assert_eq!(b - a, Duration::hours(1));
        assert!(a - at("2026-11-23T12:00:00Z") <= Duration::hours(1));
    }

    #[test]
    fn windows_are_local_times_in_the_installation_timezone() {
        let tz: Tz = "Europe/Paris".parse().expect("tz");
        let s = Schedule::auto("acc-paris", Frequency::Daily, [2, 3]);
        let next = s.next_after(at("2026-07-01T12:00:00Z"), tz).expect("next");
        let local = next.with_timezone(&tz);
        assert_eq!(local.hour(), 2, "{local}");
        // Summer time: 02:xx in Paris is 00:xx UTC.
        assert_eq!(next.hour(), 0);
    }

    #[test]
    fn a_slot_in_the_spring_forward_gap_moves_an_hour_later() {
        let tz: Tz = "Europe/Paris".parse().expect("tz");
        let s = Schedule::auto("acc-dst", Frequency::Daily, [2, 3]);
        // 2026-03-29: clocks go from 02:00 to 03:00 in Paris.
        let next = s.next_after(at("2026-03-28T12:00:00Z"), tz).expect("next");
        assert_eq!(next.with_timezone(&tz).hour(), 3);
        assert_eq!(next.with_timezone(&tz).day(), 29);
    }

    #[test]
    fn cron_takes_crontab_weekday_numbers() {
        // 2026-11-23 is a Monday.
        let after = at("2026-11-23T12:00:00Z");
        let monday = Schedule::cron("0 3 * * 1").expect("parses");
        let t = monday.next_after(after, Tz::UTC).expect("next");
        assert_eq!(t, at("2026-11-30T03:00:00Z"));
        assert_eq!(t.weekday(), Weekday::Mon);
        let sunday = Schedule::cron("30 2 * * 0").expect("parses");
        assert_eq!(
            sunday.next_after(after, Tz::UTC).map(|t| t.weekday()),
            Some(Weekday::Sun)
        );
        let seven = Schedule::cron("30 2 * * 7").expect("parses");
        assert_eq!(
            seven.next_after(after, Tz::UTC).map(|t| t.weekday()),
            Some(Weekday::Sun)
        );
        let weekdays = Schedule::cron("0 9 * * 1-5").expect("parses");
        let sat = at("2026-11-28T00:00:00Z");
        assert_eq!(
            weekdays.next_after(sat, Tz::UTC),
            Some(at("2026-11-30T09:00:00Z"))
        );
        let all_week = Schedule::cron("0 9 * * 1-7").expect("parses");
        assert_eq!(
            all_week.next_after(sat, Tz::UTC),
            Some(at("2026-11-28T09:00:00Z"))
        );
        let every_6h = Schedule::cron("15 */6 * * *").expect("parses");
        assert_eq!(
            every_6h.next_after(after, Tz::UTC),
            Some(at("2026-11-23T12:15:00Z"))
        );
        let daily = Schedule::cron("@daily").expect("alias");
        assert_eq!(
            daily.next_after(after, Tz::UTC),
            Some(at("2026-11-24T00:00:00Z"))
        );
    }

    #[test]
    fn bad_cron_expressions_say_why() {
        for (expr, needle) in [
            ("0 0 3 * * *", "6 fields"),
            ("61 3 * * *", "61 3"),
            ("0 3 * * 9", "between 0 and 7"),
            ("@sometimes", "alias"),
            ("", "0 fields"),
        ] {
            let e = Schedule::cron(expr).expect_err(expr).to_string();
            assert!(e.contains(needle) || e.contains("bad cron"), "{e}");
            assert!(e.contains("5 fields"), "{e}");
        }
    }
}
