//! The one error type of a konnector run, with Cozy-style codes.
//!
//! Every failure a user or the scheduler can see is a [`KonnectorError`]: an
//! [`ErrorCode`] from Cozy's list (so a Cozy app reads it as it reads its own
//! konnectors' errors) plus a sentence that names the cause. The code alone
//! decides what the scheduler does next: [`ErrorCode::is_retryable`].
//!
//! Gleaner adds a few sub-codes under Cozy's `UNKNOWN_ERROR` family (for
//! example `UNKNOWN_ERROR.PAGE_CHANGED`), so a Cozy app that matches on the
//! family still understands them.
//!
//! An error may also say where it came from: an [`ErrorSource`] (the vault,
//! the store, the provider, the konnector) that
//! [`std::error::Error::source`] returns. The scheduler reads it before the
//! code ([`KonnectorError::needs_user`]): a failure of this machine's vault
//! or store never pauses an account as if the person had to act, whatever
//! code a caller gave it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::next_step::UserAction;

/// A Cozy-style error code.
///
/// The string form (see [`ErrorCode::as_str`]) is the one Cozy writes into
/// `io.cozy.jobs` and `io.cozy.triggers` documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Wrong or expired credentials.
    LoginFailed,
    /// The provider blocked logins after too many attempts.
    LoginFailedTooManyAttempts,
    /// A required secret (such as a second password) is missing.
    LoginFailedNeedsSecret,
    /// The user must do something at the provider before the next run.
    UserActionNeeded,
    /// The OAuth grant is no longer valid; the user must consent again.
    UserActionNeededOauthOutdated,
    /// The provider asks the user to change their password.
    UserActionNeededChangePassword,
    /// The provider asks the user to accept new terms.
    UserActionNeededCguForm,
    /// Strong customer authentication is required.
    UserActionNeededScaRequired,
    /// A two-factor code was asked but none came in time.
    UserActionNeededTwofaExpired,
    /// The two-factor code given was wrong.
    UserActionNeededWrongTwofaCode,
    /// The provider's account was closed.
    UserActionNeededAccountRemoved,
    /// The provider is down, answers with errors, or cannot be reached.
    VendorDown,
    /// The provider announces a maintenance.
    Maintenance,
    /// The provider asked for a challenge Gleaner cannot answer.
    ChallengeAsked,
    /// A captcha could not be solved.
    CaptchaResolutionFailed,
    /// A file could not be downloaded whole (empty, truncated, wrong type).
    FileDownloadFailed,
    /// A file could not be written to the file store.
    SaveFileFailed,
    /// The file store is out of space.
    DiskQuotaExceeded,
    /// The destination folder does not exist.
    NotExistingDirectory,
    /// Anything else.
    UnknownError,
    /// The provider's pages no longer have the expected structure.
    PageChanged,
    /// A provider's JSON parses but no longer fits the konnector's types (a
    /// field renamed, removed or of another type): the JSON counterpart of
    /// [`ErrorCode::PageChanged`], naming the JSON path and the URL. Not
    /// retried: the next scheduled run tries again.
    SchemaChanged,
    /// A konnector tried to reach a host its manifest does not list.
    HostNotAllowed,
    /// A konnector needs the headless browser and no chromium binary is
    /// installed (a local setup problem: `apt-get install -y chromium`).
    BrowserMissing,
    /// An installed Node konnector cannot run: no `node` binary (a local
    /// setup problem: `apt-get install -y nodejs`).
    NodeMissing,
    /// A konnector sent more requests to one host than its budget allows.
    RequestBudgetExceeded,
    /// A konnector produced a document that failed validation.
    InvalidData,
    /// The store is unreadable or its contents are corrupt.
    StoreFailed,
    /// The vault cannot open or seal records (its key is missing, wrong or
    /// unreadable): a local failure, not the person's credentials.
    VaultFailed,
    /// No konnector with the given slug exists.
    KonnectorNotFound,
    /// A konnector manifest failed validation.
    ManifestInvalid,
    /// The run was stopped because it exceeded its time limit.
    Timeout,
}

impl ErrorCode {
    /// Every code, in the order of the enum (used by docs and tests).
    pub const ALL: &'static [ErrorCode] = &[
        Self::LoginFailed,
        Self::LoginFailedTooManyAttempts,
        Self::LoginFailedNeedsSecret,
        Self::UserActionNeeded,
        Self::UserActionNeededOauthOutdated,
        Self::UserActionNeededChangePassword,
        Self::UserActionNeededCguForm,
        Self::UserActionNeededScaRequired,
        Self::UserActionNeededTwofaExpired,
        Self::UserActionNeededWrongTwofaCode,
        Self::UserActionNeededAccountRemoved,
        Self::VendorDown,
        Self::Maintenance,
        Self::ChallengeAsked,
        Self::CaptchaResolutionFailed,
        Self::FileDownloadFailed,
        Self::SaveFileFailed,
        Self::DiskQuotaExceeded,
        Self::NotExistingDirectory,
        Self::UnknownError,
        Self::PageChanged,
        Self::SchemaChanged,
        Self::HostNotAllowed,
        Self::BrowserMissing,
        Self::NodeMissing,
        Self::RequestBudgetExceeded,
        Self::InvalidData,
        Self::StoreFailed,
        Self::VaultFailed,
        Self::KonnectorNotFound,
        Self::ManifestInvalid,
        Self::Timeout,
    ];

    /// The code as Cozy spells it, such as `LOGIN_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginFailed => "LOGIN_FAILED",
            Self::LoginFailedTooManyAttempts => "LOGIN_FAILED.TOO_MANY_ATTEMPTS",
            Self::LoginFailedNeedsSecret => "LOGIN_FAILED.NEEDS_SECRET",
            Self::UserActionNeeded => "USER_ACTION_NEEDED",
            Self::UserActionNeededOauthOutdated => "USER_ACTION_NEEDED.OAUTH_OUTDATED",
            Self::UserActionNeededChangePassword => "USER_ACTION_NEEDED.CHANGE_PASSWORD",
            Self::UserActionNeededCguForm => "USER_ACTION_NEEDED.CGU_FORM",
            Self::UserActionNeededScaRequired => "USER_ACTION_NEEDED.SCA_REQUIRED",
            Self::UserActionNeededTwofaExpired => "USER_ACTION_NEEDED.TWOFA_EXPIRED",
            Self::UserActionNeededWrongTwofaCode => "USER_ACTION_NEEDED.WRONG_TWOFA_CODE",
            Self::UserActionNeededAccountRemoved => "USER_ACTION_NEEDED.ACCOUNT_REMOVED",
            Self::VendorDown => "VENDOR_DOWN",
            Self::Maintenance => "MAINTENANCE",
            Self::ChallengeAsked => "CHALLENGE_ASKED",
            Self::CaptchaResolutionFailed => "CAPTCHA_RESOLUTION_FAILED",
            Self::FileDownloadFailed => "FILE_DOWNLOAD_FAILED",
            Self::SaveFileFailed => "SAVE_FILE_FAILED",
            Self::DiskQuotaExceeded => "DISK_QUOTA_EXCEEDED",
            Self::NotExistingDirectory => "NOT_EXISTING_DIRECTORY",
            Self::UnknownError => "UNKNOWN_ERROR",
            Self::PageChanged => "UNKNOWN_ERROR.PAGE_CHANGED",
            Self::SchemaChanged => "UNKNOWN_ERROR.SCHEMA_CHANGED",
            Self::HostNotAllowed => "UNKNOWN_ERROR.HOST_NOT_ALLOWED",
            Self::BrowserMissing => "UNKNOWN_ERROR.BROWSER_MISSING",
            Self::NodeMissing => "UNKNOWN_ERROR.NODE_MISSING",
            Self::RequestBudgetExceeded => "UNKNOWN_ERROR.REQUEST_BUDGET_EXCEEDED",
            Self::InvalidData => "UNKNOWN_ERROR.INVALID_DATA",
            Self::StoreFailed => "UNKNOWN_ERROR.STORE_FAILED",
            Self::VaultFailed => "UNKNOWN_ERROR.VAULT_FAILED",
            Self::KonnectorNotFound => "UNKNOWN_ERROR.KONNECTOR_NOT_FOUND",
            Self::ManifestInvalid => "UNKNOWN_ERROR.MANIFEST_INVALID",
            Self::Timeout => "VENDOR_DOWN.TIMEOUT",
        }
    }

    /// Parses a code from its Cozy spelling.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }

    /// Whether an automatic retry may help.
    ///
    /// Only transient provider-side failures are retryable. Login and
    /// user-action errors are never retried automatically, so a bad password
    /// never locks the user out at the provider.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::VendorDown | Self::Maintenance | Self::FileDownloadFailed | Self::Timeout
        )
    }

    /// Whether the error needs the user to act (fix credentials, consent,
    /// answer a challenge) before automatic runs may go on.
    pub fn needs_user(self) -> bool {
        let s = self.as_str();
        s.starts_with("LOGIN_FAILED")
            || s.starts_with("USER_ACTION_NEEDED")
            || self == Self::ChallengeAsked
    }

    /// What the person can do about an error with this code, if anything.
    ///
    /// Every code that [`ErrorCode::needs_user`] has one. Local failures
    /// that no single step fixes (the store, the vault, a missing browser)
    /// have none: their message says what happened.
    pub fn next_step(self) -> Option<UserAction> {
        match self {
            Self::LoginFailed | Self::LoginFailedNeedsSecret => Some(UserAction::UpdateCredentials),
            Self::LoginFailedTooManyAttempts
            | Self::UserActionNeeded
            | Self::UserActionNeededChangePassword
            | Self::UserActionNeededCguForm
            // The provider's account is closed: only the provider can say
            // why, and reopen it.
            | Self::UserActionNeededAccountRemoved => Some(UserAction::ActOnProviderSite),
            Self::UserActionNeededOauthOutdated | Self::UserActionNeededScaRequired => {
                Some(UserAction::GiveConsentAgain)
            }
            // Cozy's CHALLENGE_ASKED: a run with a person in front of it
            // can answer what an unattended one cannot.
            Self::UserActionNeededTwofaExpired
            | Self::UserActionNeededWrongTwofaCode
            | Self::ChallengeAsked => Some(UserAction::AnswerTwoFactor),
            // Transient, retried by the scheduler.
            Self::VendorDown | Self::Maintenance | Self::Timeout | Self::FileDownloadFailed => {
                Some(UserAction::WaitForProvider)
            }
            // The konnector no longer fits the provider (or misbehaves).
            Self::PageChanged
            | Self::SchemaChanged
            | Self::HostNotAllowed
            | Self::RequestBudgetExceeded
            | Self::InvalidData
            | Self::ManifestInvalid => Some(UserAction::UpdateKonnector),
            Self::DiskQuotaExceeded => Some(UserAction::FreeDiskSpace),
            Self::CaptchaResolutionFailed
            | Self::SaveFileFailed
            | Self::NotExistingDirectory
            | Self::UnknownError
            | Self::BrowserMissing
            | Self::NodeMissing
            | Self::StoreFailed
            | Self::VaultFailed
            | Self::KonnectorNotFound => None,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a provider's answer a konnector looked for something that was
/// not there: set by [`crate::scrape`] (a selector that matched nothing)
/// and by typed JSON decoding (a path that did not fit), so that tools such
/// as `gleaner dev` can point at the page without parsing the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// A CSS selector that matched nothing.
    Selector {
        /// The selector.
        selector: String,
        /// The page's URL, without query string or fragment.
        page: String,
    },
    /// A JSON value that did not fit the konnector's type.
    JsonPath {
        /// The path (`items[0].amount`; `.` for the top level).
        path: String,
        /// The URL that answered, without query string.
        url: String,
    },
}

impl Locator {
    /// The page or URL it was looked for on.
    pub fn page(&self) -> &str {
        match self {
            Locator::Selector { page, .. } => page,
            Locator::JsonPath { url, .. } => url,
        }
    }
}

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Locator::Selector { selector, page } => write!(f, "selector `{selector}` on {page}"),
            Locator::JsonPath { path, url } => write!(f, "JSON path `{path}` of {url}"),
        }
    }
}

/// Where a failure came from, as far as the code that built the error
/// knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// The vault on this machine: its key file or passphrase, or a sealed
    /// record (credentials, tokens, a session, a code) that does not open.
    Vault,
    /// The store on this machine: the database or the files tree.
    Store,
    /// The provider, or the network on the way to it.
    Provider,
    /// The konnector's own code (an external konnector's report included).
    Konnector,
}

impl SourceKind {
    /// Whether the failure is this machine's (the vault or the store):
    /// neither the person's credentials nor the provider are to blame, so
    /// it must not pause the account, and retrying at once does not help.
    pub fn is_local(self) -> bool {
        matches!(self, Self::Vault | Self::Store)
    }

    /// The kind in words: `the vault`, `the store`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vault => "the vault",
            Self::Store => "the store",
            Self::Provider => "the provider",
            Self::Konnector => "the konnector",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cause of a [`KonnectorError`]: a [`SourceKind`] and, when there is
/// one, the underlying error (an I/O error of the key file, a SQLite
/// error, ...), which its own [`std::error::Error::source`] returns.
///
/// It displays as its kind only (`the vault`): the underlying error's text
/// is one more link of the chain, and the error's `message` already says
/// what happened in words. Cheap to clone (the cause is shared).
#[derive(Clone)]
pub struct ErrorSource {
    kind: SourceKind,
    cause: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ErrorSource {
    /// A source of this kind, with no underlying error.
    pub fn new(kind: SourceKind) -> Self {
        Self { kind, cause: None }
    }

    /// A source of this kind caused by `cause`.
    ///
    /// Unlike the error's `message`, the cause's text is not scrubbed at
    /// construction: keep only errors whose text holds no secret (an I/O
    /// error on a file, a SQLite error), never one that may quote a URL
    /// with its query or a provider's answer.
    pub fn caused_by(
        kind: SourceKind,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            kind,
            cause: Some(Arc::from(cause.into())),
        }
    }

    /// The vault, with no underlying error.
    pub fn vault() -> Self {
        Self::new(SourceKind::Vault)
    }

    /// The store, with no underlying error.
    pub fn store() -> Self {
        Self::new(SourceKind::Store)
    }

    /// Where the failure came from.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// The underlying error, if one was kept.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ErrorSource");
        d.field("kind", &self.kind);
        if let Some(cause) = &self.cause {
            d.field("cause", &cause.to_string());
        }
        d.finish()
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for ErrorSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// The error of a konnector run, or of any framework call a konnector makes.
///
/// `message` is a sentence for a person that names the cause (the URL, the
/// selector, the field). It never contains a secret: the framework builds it
/// from URLs without query strings and from field names, never values.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct KonnectorError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// A sentence naming the cause.
    pub message: String,
    /// When the provider said to come back (from `Retry-After`), if it did.
    pub retry_after: Option<Duration>,
    /// The selector or JSON path that failed, when the error is about one
    /// (boxed: errors travel in every `Result`).
    pub locator: Option<Box<Locator>>,
    /// The next step, when it differs from the code's
    /// ([`ErrorCode::next_step`]); read it with [`KonnectorError::next_step`].
    pub next: Option<UserAction>,
    /// Where the failure came from, when the code that built the error
    /// knows (set by [`KonnectorError::vault`], [`KonnectorError::store`],
    /// [`KonnectorError::with_source`]); what
    /// [`std::error::Error::source`] returns.
    #[source]
    pub source: Option<ErrorSource>,
}

impl KonnectorError {
    /// Builds an error from a code and a message.
    ///
    /// The message is scrubbed here ([`crate::redact::scrub`]): a registered
    /// secret that slipped into it (a token in a URL, a provider echoing a
    /// password) is masked before the error can be logged or stored.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = match crate::redact::scrub(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(scrubbed) => scrubbed,
        };
        Self {
            code,
            message,
            retry_after: None,
            locator: None,
            next: None,
            source: None,
        }
    }

    /// `LOGIN_FAILED`: the provider refused the credentials.
    pub fn login_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LoginFailed, message)
    }

    /// `VENDOR_DOWN`: the provider is unreachable or failing.
    pub fn vendor_down(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::VendorDown, message)
    }

    /// `MAINTENANCE`: the provider announces a maintenance.
    pub fn maintenance(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Maintenance, message)
    }

    /// `UNKNOWN_ERROR.PAGE_CHANGED`: a page lost its expected structure.
    pub fn page_changed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PageChanged, message)
    }

    /// `FILE_DOWNLOAD_FAILED`: a file was empty, truncated or of the wrong type.
    pub fn file_download_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::FileDownloadFailed, message)
    }

    /// `UNKNOWN_ERROR.INVALID_DATA`: a document failed validation.
    pub fn invalid_data(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidData, message)
    }

    /// `UNKNOWN_ERROR.STORE_FAILED`: the store failed or is corrupt. Its
    /// source is [`SourceKind::Store`].
    pub fn store(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::StoreFailed, message).with_source(ErrorSource::store())
    }

    /// `UNKNOWN_ERROR.VAULT_FAILED`: the vault's key is missing, wrong or
    /// unreadable, or a record does not open. Local, never blamed on the
    /// person's credentials: it neither retries nor pauses the account. Its
    /// source is [`SourceKind::Vault`].
    pub fn vault(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::VaultFailed, message).with_source(ErrorSource::vault())
    }

    /// `DISK_QUOTA_EXCEEDED`: the disk holding the store or the files is
    /// full. Its source is [`SourceKind::Store`].
    pub fn disk_full(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DiskQuotaExceeded, message).with_source(ErrorSource::store())
    }

    /// Sets where the failure came from (replacing any source).
    pub fn with_source(mut self, source: ErrorSource) -> Self {
        self.source = Some(source);
        self
    }

    /// Where the failure came from, if the error says.
    pub fn source_kind(&self) -> Option<SourceKind> {
        self.source.as_ref().map(ErrorSource::kind)
    }

    /// Whether the failure is this machine's vault or store
    /// ([`SourceKind::is_local`]), whatever its code.
    pub fn is_local(&self) -> bool {
        self.source_kind().is_some_and(SourceKind::is_local)
    }

    /// Whether the person must act before automatic runs go on: decided on
    /// the source first, then the code. A vault or store failure never
    /// needs the person's credentials, even under a `LOGIN_FAILED*` or
    /// `USER_ACTION_NEEDED*` code a caller gave it by mistake.
    pub fn needs_user(&self) -> bool {
        !self.is_local() && self.code.needs_user()
    }

    /// Whether an automatic retry may help: never for a vault or store
    /// failure (it does not heal within a retry's delay), else the code's
    /// ([`ErrorCode::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        !self.is_local() && self.code.is_retryable()
    }

    /// Attaches the selector or JSON path that failed.
    pub fn with_locator(mut self, locator: Locator) -> Self {
        self.locator = Some(Box::new(locator));
        self
    }

    /// Sets the next step, overriding the code's.
    pub fn with_next(mut self, action: UserAction) -> Self {
        self.next = Some(action);
        self
    }

    /// What the person can do next: the explicit step, else the code's,
    /// except that a vault or store failure under a code that needs the
    /// person ([`KonnectorError::needs_user`]) asks for no credentials.
    pub fn next_step(&self) -> Option<UserAction> {
        self.next.or_else(|| {
            if self.is_local() && self.code.needs_user() {
                None
            } else {
                self.code.next_step()
            }
        })
    }

    /// Attaches the delay the provider asked for.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }
}

/// Shorthand for results whose error is a [`KonnectorError`].
pub type Result<T, E = KonnectorError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::parse("NOPE"), None);
    }

    #[test]
    fn login_errors_are_never_retried_and_need_the_user() {
        for code in ErrorCode::ALL {
            if code.as_str().starts_with("LOGIN_FAILED")
                || code.as_str().starts_with("USER_ACTION_NEEDED")
            {
                assert!(!code.is_retryable(), "{code} must not be retried");
                assert!(code.needs_user(), "{code} needs the user");
            }
        }
        assert!(ErrorCode::VendorDown.is_retryable());
        assert!(!ErrorCode::PageChanged.is_retryable());
        assert!(!ErrorCode::SchemaChanged.is_retryable());
    }

    #[test]
    fn local_failures_neither_retry_nor_blame_the_person() {
        for code in [
            ErrorCode::VaultFailed,
            ErrorCode::StoreFailed,
            ErrorCode::DiskQuotaExceeded,
        ] {
            assert!(!code.needs_user(), "{code} must not pause the account");
            assert!(!code.is_retryable(), "{code} is not transient");
        }
    }

    #[test]
    fn every_code_that_needs_the_user_has_a_next_step() {
        for code in ErrorCode::ALL {
            if code.needs_user() {
                assert!(code.next_step().is_some(), "{code} needs a next step");
            }
            if code.is_retryable() {
                assert_eq!(
                    code.next_step(),
                    Some(UserAction::WaitForProvider),
                    "{code}"
                );
            }
        }
        assert_eq!(
            ErrorCode::LoginFailed.next_step(),
            Some(UserAction::UpdateCredentials)
        );
        assert_eq!(
            ErrorCode::UserActionNeededOauthOutdated.next_step(),
            Some(UserAction::GiveConsentAgain)
        );
        assert_eq!(
            ErrorCode::DiskQuotaExceeded.next_step(),
            Some(UserAction::FreeDiskSpace)
        );
        assert_eq!(ErrorCode::VaultFailed.next_step(), None);
    }

    #[test]
    fn an_explicit_next_step_overrides_the_code() {
        let e = KonnectorError::login_failed("refused");
        assert_eq!(e.next_step(), Some(UserAction::UpdateCredentials));
        let e = e.with_next(UserAction::SeeJobs);
        assert_eq!(e.next_step(), Some(UserAction::SeeJobs));
        let e = KonnectorError::store("broken");
        assert_eq!(e.next_step(), None);
    }

    #[test]
    fn messages_are_scrubbed_at_construction() {
        let token = crate::Secret::new("err-token-5f3a9c");
        let e = KonnectorError::vendor_down(format!(
            "https://api.example/x?access_token={} failed",
            token.expose()
        ));
        assert!(!e.message.contains("err-token-5f3a9c"), "{}", e.message);
        assert!(e.to_string().contains(crate::redact::MASK));
    }

    #[test]
    fn vault_and_store_errors_name_their_source() {
        use std::error::Error as _;
        let e = KonnectorError::vault("the key does not open the record");
        assert_eq!(e.code, ErrorCode::VaultFailed);
        assert_eq!(e.source_kind(), Some(SourceKind::Vault));
        let source = e.source().expect("a vault error has a source");
        assert_eq!(source.to_string(), "the vault");
        let typed = source
            .downcast_ref::<ErrorSource>()
            .expect("an ErrorSource");
        assert_eq!(typed.kind(), SourceKind::Vault);
        assert!(e.is_local() && !e.needs_user() && !e.is_retryable());
        let e = KonnectorError::store("locked");
        assert_eq!(e.source_kind(), Some(SourceKind::Store));
        assert_eq!(
            KonnectorError::disk_full("full").source_kind(),
            Some(SourceKind::Store)
        );
        // `new` is unchanged: no source.
        let e = KonnectorError::new(ErrorCode::LoginFailedNeedsSecret, "no password");
        assert!(e.source().is_none() && e.source_kind().is_none());
        assert!(e.needs_user());
        assert_eq!(e.next_step(), Some(UserAction::UpdateCredentials));
    }

    #[test]
    fn a_local_source_overrides_a_code_that_needs_the_person() {
        let e = KonnectorError::new(ErrorCode::LoginFailedNeedsSecret, "mislabelled")
            .with_source(ErrorSource::vault());
        assert!(
            !e.needs_user(),
            "a vault failure must not pause the account"
        );
        assert!(!e.is_retryable());
        assert_eq!(e.next_step(), None, "no credentials to update");
        let e = KonnectorError::vendor_down("mislabelled").with_source(ErrorSource::store());
        assert!(!e.is_retryable());
        // The provider's refusal still needs the person.
        let e = KonnectorError::login_failed("refused")
            .with_source(ErrorSource::new(SourceKind::Provider));
        assert!(e.needs_user() && !e.is_local());
    }

    #[test]
    fn a_source_keeps_its_cause_in_the_chain() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "key file: denied");
        let e = KonnectorError::vault("cannot read the key file")
            .with_source(ErrorSource::caused_by(SourceKind::Vault, io));
        let chain: Vec<String> =
            std::iter::successors(e.source(), |c: &&dyn std::error::Error| (*c).source())
                .map(ToString::to_string)
                .collect();
        assert_eq!(chain, ["the vault", "key file: denied"]);
        let cloned = e.clone();
        assert_eq!(
            cloned
                .source
                .as_ref()
                .and_then(ErrorSource::cause)
                .map(ToString::to_string)
                .as_deref(),
            Some("key file: denied")
        );
        // Display stays code and message.
        assert_eq!(
            e.to_string(),
            "UNKNOWN_ERROR.VAULT_FAILED: cannot read the key file"
        );
    }

    #[test]
    fn display_shows_code_then_cause() {
        let e = KonnectorError::login_failed("the provider said: wrong password");
        assert_eq!(
            e.to_string(),
            "LOGIN_FAILED: the provider said: wrong password"
        );
    }
}
