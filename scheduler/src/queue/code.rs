//! [`JobCode`]: the codes the queue records, typed.

use std::fmt;

use gleaner_framework::ErrorCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A code recorded by the queue: a failed run's (`Job::error_code`, a
/// trigger's `last_error_code` and `blocked_code`), or why an automatic run
/// was skipped.
///
/// It is stored, shown and serialized as its text ([`JobCode::as_str`]),
/// which is Cozy's spelling for a konnector's code. The skip codes are the
/// scheduler's own, under a `SKIPPED.` family Cozy does not use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobCode {
    /// A konnector run's error code (a failed job, a trigger's last error
    /// or block).
    Konnector(ErrorCode),
    /// `SKIPPED.NEEDS_USER`: an automatic run was not started because the
    /// account is blocked by an error that needs the person (its trigger's
    /// `blocked_code` says which).
    SkippedNeedsUser,
    /// `SKIPPED.ALREADY_ACTIVE`: an automatic run was not started because
    /// another job of the account was queued, running or waiting.
    SkippedAlreadyActive,
    /// A stored text this build does not know (written by another version
    /// of Gleaner, or by hand): kept as it is, so an old store still reads
    /// and shows it.
    Other(String),
}

impl JobCode {
    /// The text of [`JobCode::SkippedNeedsUser`].
    pub const SKIPPED_NEEDS_USER: &'static str = "SKIPPED.NEEDS_USER";
    /// The text of [`JobCode::SkippedAlreadyActive`].
    pub const SKIPPED_ALREADY_ACTIVE: &'static str = "SKIPPED.ALREADY_ACTIVE";

    /// The text stored and shown: Cozy's spelling for a konnector's code
    /// ([`ErrorCode::as_str`]), `SKIPPED.*` for a skip, the text itself for
    /// [`JobCode::Other`].
    pub fn as_str(&self) -> &str {
        match self {
            Self::Konnector(code) => code.as_str(),
            Self::SkippedNeedsUser => Self::SKIPPED_NEEDS_USER,
            Self::SkippedAlreadyActive => Self::SKIPPED_ALREADY_ACTIVE,
            Self::Other(text) => text,
        }
    }

    /// The code stored as `text`. Never fails: a text that is neither a
    /// konnector's code ([`ErrorCode::parse`]) nor a skip's is kept as
    /// [`JobCode::Other`]. `parse(c.as_str()) == c` for every code.
    pub fn parse(text: &str) -> Self {
        if let Some(code) = ErrorCode::parse(text) {
            return Self::Konnector(code);
        }
        match text {
            Self::SKIPPED_NEEDS_USER => Self::SkippedNeedsUser,
            Self::SKIPPED_ALREADY_ACTIVE => Self::SkippedAlreadyActive,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The konnector's code, when it is one (what decides the next step:
    /// [`ErrorCode::next_step`]).
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Konnector(code) => Some(*code),
            _ => None,
        }
    }
}

impl From<ErrorCode> for JobCode {
    fn from(code: ErrorCode) -> Self {
        Self::Konnector(code)
    }
}

impl PartialEq<ErrorCode> for JobCode {
    fn eq(&self, other: &ErrorCode) -> bool {
        self.error_code() == Some(*other)
    }
}

impl fmt::Display for JobCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its text, so `gleaner jobs --json` prints what it always printed.
impl Serialize for JobCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// From its text, never failing ([`JobCode::parse`]).
impl<'de> Deserialize<'de> for JobCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self::parse(&text))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_itself_and_unknown_text_stays_visible() {
        let mut all: Vec<JobCode> = ErrorCode::ALL.iter().map(|&c| c.into()).collect();
        all.push(JobCode::SkippedNeedsUser);
        all.push(JobCode::SkippedAlreadyActive);
        for code in &all {
            assert_eq!(&JobCode::parse(code.as_str()), code);
        }
        assert_eq!(
            JobCode::parse("LOGIN_FAILED"),
            JobCode::Konnector(ErrorCode::LoginFailed)
        );
        assert_eq!(
            JobCode::parse("SKIPPED.NEEDS_USER").to_string(),
            "SKIPPED.NEEDS_USER"
        );
        let old = JobCode::parse("SOME_FUTURE.CODE");
        assert_eq!(old, JobCode::Other("SOME_FUTURE.CODE".into()));
        assert_eq!(old.as_str(), "SOME_FUTURE.CODE");
        assert_eq!(old.error_code(), None);
    }

    #[test]
    fn it_serializes_as_its_text() {
        let code = JobCode::Konnector(ErrorCode::Timeout);
        assert_eq!(
            serde_json::to_string(&code).unwrap(),
            "\"VENDOR_DOWN.TIMEOUT\""
        );
        let back: JobCode = serde_json::from_str("\"SKIPPED.ALREADY_ACTIVE\"").unwrap();
        assert_eq!(back, JobCode::SkippedAlreadyActive);
        let other: JobCode = serde_json::from_str("\"X\"").unwrap();
        assert_eq!(other, JobCode::Other("X".into()));
    }
}
