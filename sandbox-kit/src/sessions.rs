//! Server-side sessions keyed by a cookie, with an idle TTL on the
//! sandbox's [`Clock`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::HeaderMap;

use crate::clock::Clock;
use crate::cookies::{self, SetCookie};

struct Entry<T> {
    value: T,
    last_seen: Duration,
}

/// Sessions named by the cookie `cookie_name`; each holds a `T` (the
/// sandbox's per-session state). A session idle for longer than the TTL is
/// dropped at the next [`Sessions::touch`] or lookup, as PHP's session GC
/// does.
pub struct Sessions<T> {
    cookie_name: &'static str,
    clock: Arc<dyn Clock>,
    ttl: Mutex<Duration>,
    map: Mutex<HashMap<String, Entry<T>>>,
}

impl<T: Clone> Sessions<T> {
    /// Sessions under the cookie `cookie_name`, idle lifetime `ttl`.
    pub fn new(cookie_name: &'static str, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            cookie_name,
            clock,
            ttl: Mutex::new(ttl),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        self.cookie_name
    }

    /// Changes the idle lifetime (applies to every session).
    pub fn set_ttl(&self, ttl: Duration) {
        *self
            .ttl
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ttl;
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn expire(&self, map: &mut HashMap<String, Entry<T>>, now: Duration) {
        let ttl = *self
            .ttl
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, e| now.saturating_sub(e.last_seen) <= ttl);
    }

    /// Drops idle sessions, then marks the request's session (if live) as
    /// used now. Call once at the start of each request.
    pub fn touch(&self, headers: &HeaderMap) {
        let now = self.clock.now();
        let mut map = self.map();
        self.expire(&mut map, now);
        let live = cookies::values(headers, self.cookie_name).find(|id| map.contains_key(*id));
        if let Some(id) = live.map(str::to_owned)
            && let Some(entry) = map.get_mut(&id)
        {
            entry.last_seen = now;
        }
    }

    /// The id of the live session the request names (the first of its
    /// cookies that is one), if any.
    pub fn find(&self, headers: &HeaderMap) -> Option<String> {
        let now = self.clock.now();
        let mut map = self.map();
        self.expire(&mut map, now);
        cookies::values(headers, self.cookie_name)
            .find(|id| map.contains_key(*id))
            .map(str::to_owned)
    }

    /// The request's live session: its id and a copy of its state.
    pub fn current(&self, headers: &HeaderMap) -> Option<(String, T)> {
        let id = self.find(headers)?;
        let value = self.get(&id)?;
        Some((id, value))
    }

    /// A copy of a session's state.
    pub fn get(&self, id: &str) -> Option<T> {
        self.map().get(id).map(|e| e.value.clone())
    }

    /// Changes a session's state; `false` when it does not exist.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut T)) -> bool {
        match self.map().get_mut(id) {
            Some(entry) => {
                f(&mut entry.value);
                true
            }
            None => false,
        }
    }

    /// Opens a session with a fresh random id; returns the id and the
    /// `Set-Cookie` for it (`Path=/; HttpOnly`; add attributes as needed).
    pub fn create(&self, value: T) -> (String, SetCookie) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = self.clock.now();
        self.map().insert(
            id.clone(),
            Entry {
                value,
                last_seen: now,
            },
        );
        let cookie = SetCookie::new(self.cookie_name, id.clone())
            .path("/")
            .http_only();
        (id, cookie)
    }

    /// Ends a session; returns its state.
    pub fn remove(&self, id: &str) -> Option<T> {
        self.map().remove(id).map(|e| e.value)
    }

    /// Ends every session the request names.
    pub fn remove_current(&self, headers: &HeaderMap) {
        let ids: Vec<String> = cookies::values(headers, self.cookie_name)
            .map(str::to_owned)
            .collect();
        let mut map = self.map();
        for id in ids {
            map.remove(&id);
        }
    }

    /// Live sessions, idle ones not yet collected included.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use axum::http::{HeaderValue, header};

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn sessions_live_while_used_and_die_when_idle() {
        let clock = Arc::new(ManualClock::frozen());
        let sessions = Sessions::new("sid", Duration::from_secs(60), clock.clone());
        let (id, cookie) = sessions.create(1u32);
        assert_eq!(cookie.to_string(), format!("sid={id}; Path=/; HttpOnly"));
        let headers = with_cookie(&format!("sid=stale; sid={id}"));
        assert_eq!(sessions.current(&headers), Some((id.clone(), 1)));
        assert!(sessions.update(&id, |v| *v = 2));
        assert_eq!(sessions.get(&id), Some(2));

        // Used at 50 s: still alive at 100 s (idle 50 s), dead at 111 s.
        clock.advance(Duration::from_secs(50));
        sessions.touch(&headers);
        clock.advance(Duration::from_secs(50));
        assert_eq!(sessions.find(&headers).as_deref(), Some(id.as_str()));
        clock.advance(Duration::from_secs(11));
        assert_eq!(sessions.find(&headers), None);
        assert!(sessions.is_empty());
    }

    #[test]
    fn ttl_change_and_removal() {
        let clock = Arc::new(ManualClock::frozen());
        let sessions = Sessions::new("sid", Duration::from_secs(600), clock.clone());
        let (a, _) = sessions.create("a");
        let (b, _) = sessions.create("b");
        assert_ne!(a, b);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions.remove(&a), Some("a"));
        sessions.remove_current(&with_cookie(&format!("sid={b}")));
        assert!(sessions.is_empty());
        let (c, _) = sessions.create("c");
        sessions.set_ttl(Duration::from_secs(1));
        clock.advance(Duration::from_secs(2));
        sessions.touch(&with_cookie(&format!("sid={c}")));
        assert!(sessions.is_empty());
        assert!(!sessions.update(&c, |_| {}));
    }
}
