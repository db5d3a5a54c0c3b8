//! What the sandbox remembers between requests: sessions, failed logins,
//! trusted devices, the outbox, the scenario, counters.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gleaner_sandbox_kit::{ManualClock, Sessions};

use super::data::Fixture;
use super::{PASSWORD, SESSION_COOKIE, Scenario};

/// An email the sandbox "sent".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentEmail {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text, code included.
    pub body: String,
    /// The security code it carries (6 digits).
    pub code: String,
}

/// Where a browser session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visit {
    /// Not logged in.
    Anonymous,
    /// Right password from a new device: a code must be asked for.
    CodeNeeded,
    /// A code was emailed.
    CodeSent {
        /// The code.
        code: String,
    },
    /// Logged in.
    LoggedIn,
}

/// One session: where it stands and its anti-CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    /// Where it stands.
    pub visit: Visit,
    /// The `_ct` token the servlet gave it.
    pub ct: String,
}

impl Session {
    /// A session at `visit` with a fresh token.
    pub fn new(visit: Visit) -> Self {
        Self {
            visit,
            ct: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// State shared by the server's handlers and the [`super::Sandbox`] handle.
pub struct Shared {
    scenario: AtomicU8,
    /// The account's data.
    pub fixture: Fixture,
    /// `JSESSIONID` → session.
    pub sessions: Sessions<Session>,
    /// NIR → consecutive failed logins.
    failed_logins: Mutex<HashMap<String, u32>>,
    /// `trustConnect0` values the site remembers.
    trusted: Mutex<HashSet<String>>,
    /// Every email sent, oldest first.
    outbox: Mutex<Vec<SentEmail>>,
    /// The password the account takes; `None`: [`PASSWORD`].
    password: Mutex<Option<String>>,
    /// Payments list pages served.
    pub list_pages: AtomicUsize,
    /// Payment details served.
    pub details: AtomicUsize,
    /// Statements (PDFs) served.
    pub pdf_downloads: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// A fresh state.
    pub fn new(scenario: Scenario, fixture: Fixture) -> Self {
        let clock = Arc::new(ManualClock::running());
        Self {
            scenario: AtomicU8::new(scenario as u8),
            fixture,
            sessions: Sessions::new(SESSION_COOKIE, Duration::from_secs(30 * 60), clock),
            failed_logins: Mutex::default(),
            trusted: Mutex::default(),
            outbox: Mutex::default(),
            password: Mutex::default(),
            list_pages: AtomicUsize::new(0),
            details: AtomicUsize::new(0),
            pdf_downloads: AtomicUsize::new(0),
        }
    }

    /// The scenario now.
    pub fn scenario(&self) -> Scenario {
        Scenario::from_u8(self.scenario.load(Ordering::SeqCst))
    }

    /// Switches the scenario.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.scenario.store(scenario as u8, Ordering::SeqCst);
    }

    /// Failed logins per NIR.
    pub fn failed_logins(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        lock(&self.failed_logins)
    }

    /// Trusted devices.
    pub fn trusted(&self) -> MutexGuard<'_, HashSet<String>> {
        lock(&self.trusted)
    }

    /// The outbox.
    pub fn outbox(&self) -> MutexGuard<'_, Vec<SentEmail>> {
        lock(&self.outbox)
    }

    /// The password the account takes now.
    pub fn password(&self) -> String {
        lock(&self.password)
            .clone()
            .unwrap_or_else(|| PASSWORD.to_owned())
    }

    /// Changes the password.
    pub fn set_password(&self, password: &str) {
        *lock(&self.password) = Some(password.to_owned());
    }
}
