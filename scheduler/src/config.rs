//! The installation's scheduling settings, read from the `[scheduler]`
//! table of `gleaner.toml` in the data directory. Every key is optional.
//!
//! ```toml
//! [scheduler]
//! timezone = "Europe/Paris"     # IANA name; slots and cron are local times (default UTC)
//! window = [1, 6]               # overrides every manifest's time_interval
//! concurrency = 8               # runs at once, all konnectors (default 2 x CPUs)
//! per_konnector = 4             # runs at once against one provider
//! per_konnector_overrides = { free-mobile = 2 }
//! max_attempts = 3              # executions of one scheduled run, retries included
//! retry_base_secs = 60          # first retry delay, doubled each time, with jitter
//! retry_max_secs = 3600
//! retention_days = 30           # job history kept
//! lease_secs = 60               # a running job's lease; renewed every heartbeat
//! heartbeat_secs = 15
//! grace_secs = 30               # on SIGINT/SIGTERM, time left to running jobs
//! twofa_wait_secs = 600         # how long a non-terminal manual run waits for `gleaner 2fa`
//! twofa_wait_automatic_secs = 0 # nightly runs: 0 = fail at once with TWOFA_EXPIRED
//! ```
//!
//! Every `*_secs` value is at most a year ([`MAX_SECS`]), `retention_days`
//! at most a century and `poll_ms` at most an hour: larger numbers are
//! refused with the key's name, never left to overflow later.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::error::{Result, SchedulerError};

/// The longest time a `*_secs` setting may give: a year.
pub const MAX_SECS: u64 = 365 * 24 * 3600;
/// The longest job history `retention_days` may keep: a century.
pub const MAX_RETENTION_DAYS: i64 = 36_500;
/// The slowest poll `poll_ms` may set: an hour.
pub const MAX_POLL_MS: u64 = 3_600_000;

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// The timezone of slots and cron expressions.
    pub timezone: Tz,
    /// The nightly window `[start_hour, end_hour)`, overriding manifests.
    pub window: Option<[u8; 2]>,
    /// Runs at once, all konnectors.
    pub concurrency: usize,
    /// Runs at once against one konnector's provider.
    pub per_konnector: usize,
    /// Per-konnector limits that replace `per_konnector`.
    pub per_konnector_overrides: BTreeMap<String, usize>,
    /// Executions of one scheduled run, first one and retries together.
    pub max_attempts: u32,
    /// The first retry's delay.
    pub retry_base: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// How long finished jobs are kept.
    pub retention: chrono::Duration,
    /// A running job's lease.
    pub lease: Duration,
    /// How often a running job renews its lease.
    pub heartbeat: Duration,
    /// Time left to running jobs on shutdown.
    pub grace: Duration,
    /// How long a manual run with no terminal waits for `gleaner 2fa`.
    pub twofa_wait: Duration,
    /// How long an automatic run waits for `gleaner 2fa` (0: not at all).
    pub twofa_wait_automatic: Duration,
    /// How often the daemon looks for due triggers and free slots.
    pub poll: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            timezone: Tz::UTC,
            window: None,
            concurrency: 2 * cpus,
            per_konnector: 4,
            per_konnector_overrides: BTreeMap::new(),
            max_attempts: 3,
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            retention: chrono::Duration::days(30),
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            grace: Duration::from_secs(30),
            twofa_wait: Duration::from_secs(600),
            twofa_wait_automatic: Duration::ZERO,
            poll: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    scheduler: Option<RawScheduler>,
    #[serde(default)]
    database: Option<DatabaseConfig>,
}

/// A `gleaner.toml` that exists but cannot be read, named with the reason
/// (a permission problem says so in words).
fn unreadable(path: &Path, e: &std::io::Error) -> SchedulerError {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        SchedulerError::Config(format!(
            "no permission to read {}: {e}; run Gleaner as the user who owns the data directory",
            path.display()
        ))
    } else {
        SchedulerError::Config(format!("cannot read {}: {e}", path.display()))
    }
}

/// The `[database]` section of `gleaner.toml`: where an installation past
/// one machine keeps its store and queue.
///
/// ```toml
/// [database]
/// url = "postgres://gleaner@db.internal/gleaner"
/// max_connections = 8
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A `postgres://` URL; `None`: the SQLite file in the data directory.
    pub url: Option<String>,
    /// The connection pool's size per process (default 8).
    pub max_connections: Option<u32>,
}

impl DatabaseConfig {
    /// Reads the `[database]` section of `path` (a `gleaner.toml`); a
    /// missing file or section gives the default (SQLite).
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(unreadable(path, &e)),
        };
        let file: FileConfig = toml::from_str(&text)
            .map_err(|e| SchedulerError::Config(format!("{}: {e}", path.display())))?;
        let db = file.database.unwrap_or_default();
        if db.max_connections == Some(0) {
            return Err(SchedulerError::Config(format!(
                "{}: database.max_connections must be at least 1",
                path.display()
            )));
        }
        Ok(db)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    timezone: Option<String>,
    window: Option<[u8; 2]>,
    concurrency: Option<usize>,
    per_konnector: Option<usize>,
    #[serde(default)]
    per_konnector_overrides: BTreeMap<String, usize>,
    max_attempts: Option<u32>,
    retry_base_secs: Option<u64>,
    retry_max_secs: Option<u64>,
    retention_days: Option<i64>,
    lease_secs: Option<u64>,
    heartbeat_secs: Option<u64>,
    grace_secs: Option<u64>,
    twofa_wait_secs: Option<u64>,
    twofa_wait_automatic_secs: Option<u64>,
    poll_ms: Option<u64>,
}

impl SchedulerConfig {
    /// Reads `path` (a `gleaner.toml`); a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(unreadable(path, &e)),
        };
        Self::parse(&text).map_err(|e| SchedulerError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses the text of a `gleaner.toml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let raw = file.scheduler.unwrap_or_default();
        let mut c = Self::default();
        if let Some(tz) = raw.timezone {
            c.timezone = tz
                .parse()
                .map_err(|_| format!("timezone `{tz}` is not an IANA name such as Europe/Paris"))?;
        }
        if let Some([start, end]) = raw.window {
            if start > 23 || end > 24 || start >= end {
                return Err(format!(
                    "window [{start}, {end}] must be two hours with 0 <= start < end <= 24"
                ));
            }
            c.window = Some([start, end]);
        }
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(format!("{name} must be at least 1"))
            } else {
                Ok(v)
            }
        };
        if let Some(v) = raw.concurrency {
            c.concurrency = positive("concurrency", v)?;
        }
        if let Some(v) = raw.per_konnector {
            c.per_konnector = positive("per_konnector", v)?;
        }
        for (k, v) in raw.per_konnector_overrides {
            c.per_konnector_overrides.insert(
                k.clone(),
                positive(&format!("per_konnector_overrides.{k}"), v)?,
            );
        }
        if let Some(v) = raw.max_attempts {
            c.max_attempts = u32::try_from(positive("max_attempts", v as usize)?).unwrap_or(1);
        }
        // Bounded, so that no later sum or product of times overflows.
        let secs = |name: &str, v: Option<u64>, d: Duration| match v {
            None => Ok(d),
            Some(s) if s <= MAX_SECS => Ok(Duration::from_secs(s)),
            Some(s) => Err(format!("{name} ({s}) must be at most {MAX_SECS} (a year)")),
        };
        c.retry_base = secs("retry_base_secs", raw.retry_base_secs, c.retry_base)?;
        c.retry_max = secs("retry_max_secs", raw.retry_max_secs, c.retry_max)?;
        if let Some(days) = raw.retention_days {
            c.retention = chrono::Duration::try_days(days)
                .filter(|_| (1..=MAX_RETENTION_DAYS).contains(&days))
                .ok_or_else(|| {
                    format!("retention_days ({days}) must be between 1 and {MAX_RETENTION_DAYS}")
                })?;
        }
        c.lease = secs("lease_secs", raw.lease_secs, c.lease)?;
        c.heartbeat = secs("heartbeat_secs", raw.heartbeat_secs, c.heartbeat)?;
        if c.heartbeat.is_zero() || c.heartbeat.checked_mul(2).is_none_or(|d| d > c.lease) {
            return Err(format!(
                "heartbeat_secs ({}) must be at least 1 and at most half of lease_secs ({})",
                c.heartbeat.as_secs(),
                c.lease.as_secs()
            ));
        }
        c.grace = secs("grace_secs", raw.grace_secs, c.grace)?;
        c.twofa_wait = secs("twofa_wait_secs", raw.twofa_wait_secs, c.twofa_wait)?;
        c.twofa_wait_automatic = secs(
            "twofa_wait_automatic_secs",
            raw.twofa_wait_automatic_secs,
            c.twofa_wait_automatic,
        )?;
        if let Some(ms) = raw.poll_ms {
            if ms > MAX_POLL_MS {
                return Err(format!("poll_ms ({ms}) must be at most {MAX_POLL_MS}"));
            }
            c.poll = Duration::from_millis(ms.max(10));
        }
        Ok(c)
    }

    /// The concurrency limit for one konnector.
    pub fn limit_for(&self, konnector: &str) -> usize {
        self.per_konnector_overrides
            .get(konnector)
            .copied()
            .unwrap_or(self.per_konnector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_empty_and_values_when_given() {
        let c = SchedulerConfig::parse("").expect("empty");
        assert_eq!(c.timezone, Tz::UTC);
        assert_eq!(c.retention, chrono::Duration::days(30));
        let c = SchedulerConfig::parse(
            "[scheduler]\ntimezone = \"Europe/Paris\"\nwindow = [1, 6]\nper_konnector = 3\nper_konnector_overrides = { free-mobile = 1 }\n",
        )
        .expect("parses");
        assert_eq!(c.timezone, Tz::Europe__Paris);
        assert_eq!(c.window, Some([1, 6]));
        assert_eq!(c.limit_for("free-mobile"), 1);
        assert_eq!(c.limit_for("other"), 3);
    }

    #[test]
    fn bad_values_are_named() {
        for (text, needle) in [
            ("[scheduler]\ntimezone = \"Mars/Olympus\"", "Mars/Olympus"),
            ("[scheduler]\nwindow = [6, 1]", "window"),
            ("[scheduler]\nconcurrency = 0", "concurrency"),
            (
                "[scheduler]\nlease_secs = 10\nheartbeat_secs = 8",
                "heartbeat_secs",
            ),
            ("[scheduler]\nbogus = 1", "bogus"),
        ] {
            let e = SchedulerConfig::parse(text).expect_err(text);
            assert!(e.contains(needle), "{e} should name {needle}");
        }
    }

    #[test]
    fn huge_numbers_are_refused_not_a_panic() {
        // The heartbeat check doubled the heartbeat, the history's retention
        // went into chrono::Duration::days, and the daemon adds a minute to
        // twice the poll: each overflowed (fuzz/regressions/config/). Other
        // times are bounded alike.
        for (text, needle) in [
            (
                "[scheduler]\nheartbeat_secs = 18446744073709551615",
                "heartbeat_secs",
            ),
            (
                "[scheduler]\nretention_days = 9223372036854775807",
                "retention_days",
            ),
            ("[scheduler]\npoll_ms = 18446744073709551615", "poll_ms"),
            (
                "[scheduler]\ngrace_secs = 18446744073709551615",
                "grace_secs",
            ),
        ] {
            let e = SchedulerConfig::parse(text).expect_err(text);
            assert!(e.contains(needle), "{e} should name {needle}");
        }
    }
}
