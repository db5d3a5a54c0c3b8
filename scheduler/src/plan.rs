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

/// The five crontab fields: name, smallest and largest value, and the names
/// the field also takes.
const CRONTAB_FIELDS: [(&str, u32, u32, &str); 5] = [
    ("minute", 0, 59, ""),
    ("hour", 0, 23, ""),
    ("day of month", 1, 31, ""),
    ("month", 1, 12, " or names JAN-DEC"),
    ("day of week", 0, 7, " or names SUN-SAT"),
];

/// Parses a crontab-style 5-field expression (or an `@` alias).
///
/// Errors are worded in crontab's terms: they quote the expression as given
/// and name the field at fault (`minute `61` is out of range 0-59`), never
/// the 6-field form handed to the `cron` crate. An expression that names no
/// real date (`0 0 31 2 *`) is refused too, since it would never run.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule> {
    let bad = |reason: String| SchedulerError::Cron {
        expr: expr.trim().to_owned(),
        reason,
    };
    let expr = expr.trim();
    let schedule = if expr.starts_with('@') {
        match expr {
            "@hourly" | "@daily" | "@midnight" | "@weekly" | "@monthly" | "@yearly"
            | "@annually" => {
                // The crate knows the first five only.
                let alias = match expr {
                    "@midnight" => "@daily",
                    "@annually" => "@yearly",
                    other => other,
                };
                cron::Schedule::from_str(alias)
                    .map_err(|_| bad("the `cron` crate refused this alias".into()))?
            }
            _ => {
                return Err(bad(
                    "unknown alias; use @hourly, @daily, @weekly, @monthly or @yearly".into(),
                ));
            }
        }
    } else {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [_, _, _, _, _] = fields.as_slice() else {
            return Err(bad(format!(
                "it has {} fields, not 5 (give minute hour day-of-month month day-of-week, e.g. `30 2 * * *`)",
                fields.len()
            )));
        };
        for (text, spec) in fields.iter().zip(&CRONTAB_FIELDS) {
            check_crontab_field(*spec, text).map_err(&bad)?;
        }
        let six = |fields: [&str; 5]| -> Result<cron::Schedule, ()> {
            let dow = crontab_weekdays(fields[4]).map_err(|_| ())?;
            let full = format!(
                "0 {} {} {} {} {dow}",
                fields[0], fields[1], fields[2], fields[3]
            );
            cron::Schedule::from_str(&full).map_err(|_| ())
        };
        let given = [fields[0], fields[1], fields[2], fields[3], fields[4]];
        match six(given) {
            Ok(schedule) => schedule,
            Err(()) => {
                // Say which field the crate refused, in crontab's terms: try
                // each field alone, the others left at `*`.
                let culprit = (0..5).find(|&i| {
                    let mut alone = ["*"; 5];
                    alone[i] = given[i];
                    six(alone).is_err()
                });
                return Err(bad(match culprit {
                    Some(i) => not_understood(CRONTAB_FIELDS[i], given[i]),
                    None => "its fields are not understood together".into(),
                }));
            }
        }
    };
    if schedule
        .after(&DateTime::<Utc>::UNIX_EPOCH)
        .next()
        .is_none()
    {
        return Err(bad(
            "it never runs: no date matches its day of month, month and day of week".into(),
        ));
    }
    Ok(schedule)
}

/// The message for a field the `cron` crate cannot read.
fn not_understood((name, min, max, names): (&str, u32, u32, &str), field: &str) -> String {
    format!(
        "{name} `{field}` is not understood (use *, numbers {min}-{max}{names}, ranges a-b, lists a,b and steps /n)"
    )
}

/// Checks one crontab field: its shape (items of `*`, a value or a range
/// `a-b`, each with an optional step `/n`, values being digits or a name),
/// then its numbers: values in range, ranges that do not run backwards,
/// steps of at least 1. Which names exist is left to the `cron` crate.
///
/// The shape matters: the crate reads fields that follow each other without
/// a space, so `0* 9 5 5 *` would become minute 0, hour `*`, and so on.
fn check_crontab_field(spec: (&str, u32, u32, &str), field: &str) -> Result<(), String> {
    let (name, min, max, _) = spec;
    let value = |v: &str| {
        !v.is_empty()
            && (v.bytes().all(|b| b.is_ascii_digit()) || v.bytes().all(|b| b.is_ascii_alphabetic()))
    };
    let well_formed = field.split(',').all(|part| {
        let (base, step) = match part.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (part, None),
        };
        let base_ok = match base {
            "*" | "?" => true,
            _ => match base.split_once('-') {
                Some((a, b)) => value(a) && value(b),
                None => value(base),
            },
        };
        base_ok && step.is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    });
    if !well_formed {
        return Err(not_understood(spec, field));
    }
    let number = |v: &str| -> Result<Option<u32>, String> {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!("{name} `{v}` is out of range {min}-{max}")),
        }
    };
    for part in field.split(',') {
        let (base, step) = match part.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            let top = max.max(1);
            if !step.parse::<u32>().is_ok_and(|n| (1..=top).contains(&n)) {
                return Err(format!("{name} step `/{step}` is out of range 1-{top}"));
            }
        }
        if let Some((a, b)) = base.split_once('-') {
            if let (Some(a), Some(b)) = (number(a)?, number(b)?)
                && a > b
            {
                return Err(format!("{name} range `{base}` runs backwards"));
            }
        } else {
            number(base)?;
        }
    }
    Ok(())
}

/// Rewrites crontab weekday numbers (0 or 7 = Sunday) as names, which the
/// `cron` crate reads unambiguously. Numeric ranges and steps are spelled
/// out day by day (`1-7/2` is Monday, Wednesday, Friday and Sunday), since a
/// range ending on 7 has no contiguous form in the crate's numbering.
fn crontab_weekdays(field: &str) -> Result<String, String> {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let number = |n: &str| -> Result<Option<usize>, String> {
        match n.parse::<usize>() {
            Ok(i) if i < NAMES.len() => Ok(Some(i)),
            Ok(i) => Err(format!("day of week `{i}` is out of range 0-7")),
            Err(_) => Ok(None),
        }
    };
    field
        .split(',')
        .map(|part| {
            let (base, step) = match part.split_once('/') {
                Some((b, s)) => (b, Some(s)),
                None => (part, None),
            };
            let bounds = match base.split_once('-') {
                Some((a, b)) => number(a)?.zip(number(b)?),
                None => number(base)?.map(|a| (a, if step.is_some() { 7 } else { a })),
            };
            let Some((first, last)) = bounds else {
                // `*`, names, or something for the crate to refuse.
                return Ok(part.to_owned());
            };
            let step = match step {
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|&s| s >= 1)
                    .ok_or_else(|| format!("day of week step `/{s}` is not at least 1"))?,
                None => 1,
            };
            let days: Vec<&str> = (first..=last).step_by(step).map(|i| NAMES[i]).collect();
            if days.is_empty() {
                return Err(format!("day of week range `{base}` runs backwards"));
            }
            Ok(days.join(","))
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
            ("0 0 3 * * *", "6 fields, not 5 (give minute hour"),
            ("61 3 * * *", "minute `61`"),
            ("0 3 * * 9", "out of range 0-7"),
            ("@sometimes", "alias"),
            ("", "0 fields, not 5"),
        ] {
            let e = Schedule::cron(expr).expect_err(expr).to_string();
            assert!(e.contains(needle), "{e}");
            assert!(e.contains(&format!("`{expr}`")), "{e}");
        }
    }

    #[test]
    fn cron_errors_speak_crontab_and_quote_the_five_fields() {
        for (expr, message) in [
            (
                "61 2 * * *",
                "`61 2 * * *`: minute `61` is out of range 0-59",
            ),
            ("0 24 * * *", "hour `24` is out of range 0-23"),
            ("0 2 0 * *", "day of month `0` is out of range 1-31"),
            ("0 2 32 * *", "day of month `32` is out of range 1-31"),
            ("0 2 * 13 *", "month `13` is out of range 1-12"),
            ("0 2 * * 8", "day of week `8` is out of range 0-7"),
            ("0-61 2 * * *", "minute `61` is out of range 0-59"),
            ("5,99 2 * * *", "minute `99` is out of range 0-59"),
            ("*/0 2 * * *", "minute step `/0` is out of range 1-59"),
            ("30-10 2 * * *", "minute range `30-10` runs backwards"),
            ("0 2 * * FOO", "day of week `FOO` is not understood"),
            ("x 2 * * *", "minute `x` is not understood"),
            ("0 0 31 2 *", "never runs"),
        ] {
            let e = Schedule::cron(expr).expect_err(expr).to_string();
            assert!(e.contains(message), "{expr}: {e}");
            // Neither the crate's words nor the rewritten 6-field form.
            for leak in ["Minutes", "Hours", "must be less than", "0 61", "0 0 24"] {
                assert!(!e.contains(leak), "{expr}: {e}");
            }
        }
    }

    #[test]
    fn crontab_weekday_steps_and_aliases() {
        // 2026-11-23 is a Monday. 1-7/2: Monday, Wednesday, Friday, Sunday.
        let s = Schedule::cron("0 9 * * 1-7/2").expect("parses");
        let mut t = at("2026-11-23T12:00:00Z");
        let mut days = Vec::new();
        for _ in 0..4 {
            t = s.next_after(t, Tz::UTC).expect("next");
            days.push(t.weekday());
        }
        assert_eq!(
            days,
            [Weekday::Wed, Weekday::Fri, Weekday::Sun, Weekday::Mon]
        );
        let midnight = Schedule::cron("@midnight").expect("alias");
        assert_eq!(
            midnight.next_after(at("2026-11-23T12:00:00Z"), Tz::UTC),
            Some(at("2026-11-24T00:00:00Z"))
        );
        assert!(Schedule::cron("@annually").is_ok());
    }

    #[test]
    fn fields_run_together_are_refused_not_misread() {
        // Found by the `cron` fuzz target (fuzz/regressions/cron/): the
        // crate reads fields that follow each other without a space, so
        // `0* 9 5 5 *` ran at minute 0 of hour 0, not at 9 o'clock.
        for (expr, field) in [
            ("0* 9 5  5 * ", "minute `0*`"),
            (" *0- 9 */2 * *", "minute `*0-`"),
            ("*5/2 9 * */2 *", "minute `*5/2`"),
            ("-0 9 ** \r02 02", "minute `-0`"),
            ("-5 8 4 -8 **5", "minute `-5`"),
            ("** 4 8 2 *", "minute `**`"),
            ("0 9 1,,2 * *", "day of month `1,,2`"),
            ("0 9 * * */x", "day of week `*/x`"),
        ] {
            let e = Schedule::cron(expr).expect_err(expr).to_string();
            assert!(e.contains(&format!("{field} is not understood")), "{e}");
        }
    }
}
