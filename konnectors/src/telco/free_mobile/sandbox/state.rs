//! What the sandbox remembers between requests: sessions, failed logins,
//! new-device verification, the outbox, the scenario.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gleaner_sandbox_kit::{ManualClock, Sessions};

use super::{DEFAULT_SESSION_TTL, PASSWORD, SESSION_COOKIE, Scenario};

/// An email the sandbox "sent".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentEmail {
    /// The recipient ([`super::EMAIL_TO`]).
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text, code included.
    pub body: String,
    /// The verification code it carries (6 digits).
    pub code: String,
}

/// A login waiting for its verification code.
pub(super) struct Pending {
    /// The customer id that logged in.
    pub(super) login: String,
    /// The code sent.
    pub(super) code: String,
    /// The form's hidden `otp-token` (anti-CSRF), checked on post.
    pub(super) token: String,
    /// When the code was sent (sandbox clock).
    pub(super) sent_at: Duration,
    /// Wrong codes posted so far.
    pub(super) attempts: u32,
}

/// New-device verification state.
#[derive(Default)]
pub(super) struct TwoFactorState {
    /// Session id (not yet logged in) → its pending verification.
    pub(super) pending: HashMap<String, Pending>,
    /// Trusted-device cookie value → customer id.
    pub(super) trusted: HashMap<String, String>,
    /// Customer id → verification locked until (sandbox clock).
    pub(super) locked: HashMap<String, Duration>,
    /// Every email sent, oldest first.
    pub(super) outbox: Vec<SentEmail>,
}

/// State shared by the server's handlers and the [`super::Sandbox`] handle.
pub(super) struct Shared {
    scenario: AtomicU8,
    pub(super) pdf_downloads: AtomicUsize,
    /// The sandbox's clock (sessions, codes, lockouts).
    pub(super) clock: Arc<ManualClock>,
    /// `PHPSESSID` → id of the current line.
    pub(super) sessions: Sessions<&'static str>,
    /// `login-ident` → consecutive failed logins.
    failed_logins: Mutex<HashMap<String, u32>>,
    /// New-device verification.
    two_factor: Mutex<TwoFactorState>,
    /// The password the account takes; `None` means [`PASSWORD`].
    password: Mutex<Option<String>>,
}

impl Shared {
    pub(super) fn new(scenario: Scenario) -> Self {
        let clock = Arc::new(ManualClock::running());
        Self {
            scenario: AtomicU8::new(scenario.to_u8()),
            pdf_downloads: AtomicUsize::new(0),
            sessions: Sessions::new(SESSION_COOKIE, DEFAULT_SESSION_TTL, clock.clone()),
            clock,
            failed_logins: Mutex::default(),
            two_factor: Mutex::default(),
            password: Mutex::default(),
        }
    }

    /// The sandbox clock's reading.
    pub(super) fn clock_now(&self) -> Duration {
        use gleaner_sandbox_kit::Clock;
        self.clock.now()
    }

    pub(super) fn scenario(&self) -> Scenario {
        Scenario::from_u8(self.scenario.load(Ordering::SeqCst))
    }

    pub(super) fn set_scenario(&self, scenario: Scenario) {
        self.scenario.store(scenario.to_u8(), Ordering::SeqCst);
    }

    pub(super) fn failed_logins(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.failed_logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn two_factor(&self) -> MutexGuard<'_, TwoFactorState> {
        self.two_factor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The password the account takes now.
    pub(super) fn password(&self) -> String {
        self.password
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| PASSWORD.to_owned())
    }

    pub(super) fn set_password(&self, password: &str) {
        *self
            .password
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(password.to_owned());
    }
}
