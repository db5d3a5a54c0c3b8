//! What the sandbox remembers between requests.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gleaner_sandbox_kit::{ManualClock, Sessions};

use super::Scenario;
use crate::energy::edf::fixture::Account;

/// An e-mail the sandbox "sent".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentEmail {
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The code it carries (6 digits).
    pub code: String,
}

/// Where a login is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Username,
    Device,
    Otp,
    Password,
}

/// A login under way (keyed by `authId`).
#[derive(Debug, Clone)]
pub(super) struct Flow {
    pub(super) stage: Stage,
    pub(super) login: String,
    pub(super) code: Option<String>,
    pub(super) new_device: Option<String>,
}

/// A customer-area session (keyed by the `ivoiream` cookie).
#[derive(Debug, Clone, Default)]
pub(super) struct SiteSession {
    /// `checkAuthenticate` was called.
    pub(super) checked: bool,
    /// "Mes documents" was opened.
    pub(super) documents: bool,
    /// The CSRF token `initPage` gave.
    pub(super) csrf: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// State shared by the handlers and the [`super::Sandbox`] handle.
pub(super) struct Shared {
    scenario: Mutex<Scenario>,
    pub(super) account: Account,
    pub(super) sessions: Sessions<SiteSession>,
    /// The sessions' clock.
    pub(super) clock: Arc<ManualClock>,
    pub(super) pdf_downloads: AtomicUsize,
    flows: Mutex<HashMap<String, Flow>>,
    failed: Mutex<HashMap<String, u32>>,
    trusted: Mutex<HashSet<String>>,
    outbox: Mutex<Vec<SentEmail>>,
}

impl Shared {
    pub(super) fn new(scenario: Scenario) -> serde_json::Result<Self> {
        let clock = Arc::new(ManualClock::running());
        Ok(Self {
            scenario: Mutex::new(scenario),
            account: Account::load()?,
            sessions: Sessions::new(
                crate::energy::edf::routes::SSO_COOKIE,
                Duration::from_secs(30 * 60),
                clock.clone(),
            ),
            clock,
            pdf_downloads: AtomicUsize::new(0),
            flows: Mutex::default(),
            failed: Mutex::default(),
            trusted: Mutex::default(),
            outbox: Mutex::default(),
        })
    }

    pub(super) fn scenario(&self) -> Scenario {
        *lock(&self.scenario)
    }

    pub(super) fn set_scenario(&self, scenario: Scenario) {
        *lock(&self.scenario) = scenario;
    }

    pub(super) fn flow(&self, auth_id: &str) -> Option<Flow> {
        lock(&self.flows).get(auth_id).cloned()
    }

    pub(super) fn set_flow(&self, auth_id: &str, flow: Flow) {
        lock(&self.flows).insert(auth_id.to_owned(), flow);
    }

    pub(super) fn end_flow(&self, auth_id: &str) {
        lock(&self.flows).remove(auth_id);
    }

    pub(super) fn failures(&self, login: &str) -> u32 {
        lock(&self.failed).get(login).copied().unwrap_or(0)
    }

    pub(super) fn fail(&self, login: &str) -> u32 {
        let mut failed = lock(&self.failed);
        let n = failed.entry(login.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    pub(super) fn reset_failures(&self, login: &str) {
        lock(&self.failed).remove(login);
    }

    pub(super) fn trusts(&self, device: &str) -> bool {
        lock(&self.trusted).contains(device)
    }

    pub(super) fn trust(&self, device: &str) {
        lock(&self.trusted).insert(device.to_owned());
    }

    pub(super) fn send(&self, mail: SentEmail) {
        lock(&self.outbox).push(mail);
    }

    pub(super) fn outbox(&self) -> Vec<SentEmail> {
        lock(&self.outbox).clone()
    }
}
