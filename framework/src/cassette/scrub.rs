//! Scrubbing: secrets out of cassettes, replaced by stable placeholders.
//!
//! A [`Scrubber`] knows values to hide and the placeholder of each:
//!
//! - the run's **secrets**, by field name: `__SECRET_password__`;
//! - the account's non-secret **fields** (its login, contract numbers):
//!   `__FIELD_login__`;
//! - values **discovered** in the exchanges, numbered by kind in order of
//!   first appearance: `Authorization` credentials, header values marked
//!   sensitive, and JSON, form or query fields named like a token or a
//!   password (`access_token`, `refresh_token`, `id_token`, `password`,
//!   `client_secret`, `code`, `access`, `refresh`, ...) become
//!   `__TOKEN_1__`; cookie values (`Cookie`, `Set-Cookie`) `__COOKIE_1__`;
//!   IBANs (checked by their mod-97 key) `__IBAN_1__`; runs of 11 to 19
//!   digits (account and card numbers; not millisecond timestamps)
//!   `__ACCOUNT_1__`.
//!
//! The same value gets the same placeholder everywhere in the cassette
//! (a cookie set by one response and sent by the next request), so a replay
//! still matches. Each value is also replaced in its URL-encoded, percent-
//! encoded, base64 and JSON-escaped forms, where it stands whole (not
//! inside a longer word or number: a login `12345678` is left alone inside
//! the phone number `0612345678`). Values shorter than 4
//! characters are left alone (hiding every `1` would garble the cassette);
//! discovered values must also be 8 characters long or hold a digit.
//!
//! At replay the outgoing requests are scrubbed the same way with the
//! replaying run's own secrets, and numbered placeholders compare as
//! wildcards of their kind ([`wildcard`]): a cassette replays with any
//! credentials.
//!
//! Limits: binary bodies (base64 in the cassette) are not scrubbed; a
//! secret transformed otherwise (hashed, split) is not recognised.

use std::collections::{BTreeMap, HashMap};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::{Body, Cassette, RecordedRequest, RecordedResponse};
use crate::secret::Secret;

/// The shortest value replaced.
const MIN_LEN: usize = 4;

/// Replaces secret values by stable placeholders. See the module docs.
#[derive(Default)]
pub struct Scrubber {
    /// Value → placeholder.
    known: HashMap<String, String>,
    /// Next number per kind.
    counters: BTreeMap<&'static str, u32>,
    /// The automaton over every form of every known value, rebuilt lazily.
    matcher: Option<(AhoCorasick, Vec<String>)>,
}

impl Scrubber {
    /// An empty scrubber (discovery only).
    pub fn new() -> Self {
        Self::default()
    }

    /// A scrubber for a run: its secrets (`__SECRET_<name>__`) and its
    /// account's fields (`__FIELD_<name>__`).
    pub fn for_run(secrets: &BTreeMap<String, Secret>, fields: &BTreeMap<String, String>) -> Self {
        let mut s = Self::new();
        for (name, value) in secrets {
            s.add_secret(name, value.expose());
        }
        for (name, value) in fields {
            s.add_field(name, value);
        }
        s
    }

    /// Hides a secret value as `__SECRET_<name>__`.
    pub fn add_secret(&mut self, name: &str, value: &str) {
        self.add_named(value, format!("__SECRET_{}__", placeholder_name(name)));
    }

    /// Hides an identifying value as `__FIELD_<name>__`.
    pub fn add_field(&mut self, name: &str, value: &str) {
        self.add_named(value, format!("__FIELD_{}__", placeholder_name(name)));
    }

    fn add_named(&mut self, value: &str, placeholder: String) {
        if value.len() < MIN_LEN || is_placeholder(value) {
            return;
        }
        if !self.known.contains_key(value) {
            self.known.insert(value.to_owned(), placeholder);
            self.matcher = None;
        }
    }

    /// Hides a discovered value under a numbered placeholder of `kind`
    /// (`TOKEN`, `COOKIE`, `IBAN`, `ACCOUNT`), unless it is too short or
    /// too plain to be a secret.
    pub fn learn(&mut self, value: &str, kind: &'static str) {
        let value = value.trim_matches('"');
        if !worth_hiding(value) || self.known.contains_key(value) {
            return;
        }
        let n = self.counters.entry(kind).or_insert(0);
        *n += 1;
        self.known
            .insert(value.to_owned(), format!("__{kind}_{n}__"));
        self.matcher = None;
    }

    /// How many values the scrubber hides.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether it hides nothing.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Learns the secrets a request carries (see the module docs).
    pub fn discover_request(&mut self, req: &RecordedRequest) {
        self.discover_url(&req.url);
        let mut form = false;
        for (name, value) in &req.headers {
            match name.to_ascii_lowercase().as_str() {
                "authorization" | "proxy-authorization" => {
                    let cred = value.split_once(' ').map_or(value.as_str(), |(_, c)| c);
                    self.learn(cred.trim(), "TOKEN");
                }
                "cookie" => {
                    for pair in value.split(';') {
                        if let Some((_, v)) = pair.split_once('=') {
                            self.learn(v.trim(), "COOKIE");
                        }
                    }
                }
                "content-type" => {
                    form = value.starts_with("application/x-www-form-urlencoded");
                }
                _ => {}
            }
        }
        if let Some(Body::Text(text)) = &req.body {
            if form {
                let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
                    .into_owned()
                    .collect();
                self.discover_pairs(&pairs);
            }
            self.discover_body(text);
        }
    }

    /// Learns the secrets a response carries.
    pub fn discover_response(&mut self, resp: &RecordedResponse) {
        self.discover_url(&resp.url);
        for (name, value) in &resp.headers {
            match name.to_ascii_lowercase().as_str() {
                "set-cookie" => {
                    let first = value.split(';').next().unwrap_or("");
                    if let Some((_, v)) = first.split_once('=') {
                        self.learn(v.trim(), "COOKIE");
                    }
                }
                "location" => self.discover_url(value),
                _ => {}
            }
        }
        if let Some(Body::Text(text)) = &resp.body {
            self.discover_body(text);
        }
    }

    fn discover_url(&mut self, url: &str) {
        if let Ok(u) = url::Url::parse(url) {
            let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
            self.discover_pairs(&pairs);
            self.discover_text(u.path());
        }
    }

    fn discover_pairs(&mut self, pairs: &[(String, String)]) {
        for (k, v) in pairs {
            if let Some(kind) = key_kind(k) {
                self.learn(v, kind);
            }
        }
    }

    fn discover_body(&mut self, text: &str) {
        let trimmed = text.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        {
            self.discover_json(&v);
        }
        self.discover_text(text);
    }

    fn discover_json(&mut self, v: &serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (key_kind(k), v) {
                        (Some(kind), serde_json::Value::String(s)) => self.learn(s, kind),
                        // Numbers are secret only as account numbers (a
                        // `session_timeout: 3600` is not).
                        (Some("ACCOUNT"), serde_json::Value::Number(n)) => {
                            self.learn(&n.to_string(), "ACCOUNT")
                        }
                        _ => self.discover_json(v),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| self.discover_json(i)),
            _ => {}
        }
    }

    /// Learns IBANs and long digit runs in free text.
    pub fn discover_text(&mut self, text: &str) {
        for iban in find_ibans(text) {
            self.learn(iban, "IBAN");
        }
        for digits in find_account_numbers(text) {
            self.learn(digits, "ACCOUNT");
        }
    }

    fn matcher(&mut self) -> Option<&(AhoCorasick, Vec<String>)> {
        if self.matcher.is_none() && !self.known.is_empty() {
            let mut patterns = Vec::new();
            let mut replacements = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (value, placeholder) in &self.known {
                let mut forms = crate::redact::forms_of(value);
                if let Ok(json) = serde_json::to_string(value) {
                    forms.push(json.trim_matches('"').to_owned());
                }
                for form in forms {
                    if form.len() >= MIN_LEN && seen.insert(form.clone()) {
                        patterns.push(form);
                        replacements.push(placeholder.clone());
                    }
                }
            }
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .build(&patterns)
                .or_else(|_| {
                    AhoCorasickBuilder::new()
                        .match_kind(MatchKind::LeftmostLongest)
                        .kind(Some(AhoCorasickKind::NoncontiguousNFA))
                        .build(&patterns)
                })
                .ok()?;
            self.matcher = Some((ac, replacements));
        }
        self.matcher.as_ref()
    }

    /// `text` with every known value (in every form) replaced.
    pub fn scrub_text(&mut self, text: &str) -> String {
        let Some((ac, replacements)) = self.matcher() else {
            return text.to_owned();
        };
        if !ac.is_match(text) {
            return text.to_owned();
        }
        // Only whole values: a login `12345678` inside the phone number
        // `0612345678` is a coincidence, not the login.
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in ac.find_iter(text) {
            let before = m.start().checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(m.end()).copied();
            if before.is_some_and(|b| b.is_ascii_alphanumeric())
                || after.is_some_and(|b| b.is_ascii_alphanumeric())
            {
                continue;
            }
            out.push_str(&text[last..m.start()]);
            out.push_str(&replacements[m.pattern().as_usize()]);
            last = m.end();
        }
        out.push_str(&text[last..]);
        out
    }

    fn scrub_headers(&mut self, headers: &mut [(String, String)]) {
        for (_, v) in headers.iter_mut() {
            *v = self.scrub_text(v);
        }
    }

    fn scrub_body(&mut self, body: &mut Option<Body>) {
        if let Some(Body::Text(t)) = body {
            *t = self.scrub_text(t);
        }
    }

    /// A request scrubbed in place (after [`Scrubber::discover_request`]).
    pub fn scrub_request(&mut self, req: &mut RecordedRequest) {
        req.url = self.scrub_text(&req.url);
        self.scrub_headers(&mut req.headers);
        self.scrub_body(&mut req.body);
    }

    /// A response scrubbed in place.
    pub fn scrub_response(&mut self, resp: &mut RecordedResponse) {
        resp.url = self.scrub_text(&resp.url);
        self.scrub_headers(&mut resp.headers);
        self.scrub_body(&mut resp.body);
    }

    /// Discovers the secrets of the whole cassette, then replaces them
    /// everywhere (a value discovered late is hidden in earlier exchanges
    /// too). Call it before writing a cassette anywhere.
    pub fn scrub_cassette(&mut self, mut cassette: Cassette) -> Cassette {
        for ex in &cassette.exchanges {
            self.discover_request(&ex.request);
            self.discover_response(&ex.response);
        }
        for s in &cassette.snapshots {
            self.discover_url(&s.url);
            self.discover_text(&s.html);
        }
        for ex in &mut cassette.exchanges {
            self.scrub_request(&mut ex.request);
            self.scrub_response(&mut ex.response);
        }
        for s in &mut cassette.snapshots {
            s.url = self.scrub_text(&s.url);
            s.html = self.scrub_text(&s.html);
        }
        cassette
    }
}

/// A field name as placeholders spell it: ASCII alphanumerics and `_`.
fn placeholder_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Whether `value` is a placeholder already (`__…__`).
pub fn is_placeholder(value: &str) -> bool {
    value.len() > 4
        && value.starts_with("__")
        && value.ends_with("__")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*')
}

fn worth_hiding(value: &str) -> bool {
    if value.len() < MIN_LEN || is_placeholder(value) {
        return false;
    }
    if matches!(
        value.to_ascii_lowercase().as_str(),
        "true" | "false" | "null" | "none" | "deleted" | "bearer" | "basic"
    ) {
        return false;
    }
    value.len() >= 8 || value.chars().any(|c| c.is_ascii_digit())
}

/// The kind of secret a JSON, form or query field holds, by its name.
fn key_kind(key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    const TOKENISH: &[&str] = &[
        "token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "session",
        "apikey",
        "api_key",
        "assertion",
        "code_verifier",
        "otp",
    ];
    // `access` and `refresh`: the token pair of simplejwt-style APIs
    // (GoCardless Bank Account Data), whose field names say no "token".
    if k == "code"
        || k == "sid"
        || k == "access"
        || k == "refresh"
        || TOKENISH.iter().any(|t| k.contains(t))
    {
        Some("TOKEN")
    } else if k.contains("iban") {
        Some("IBAN")
    } else if k.contains("account_number")
        || k.contains("accountnumber")
        || k.contains("card_number")
        || k.contains("cardnumber")
    {
        Some("ACCOUNT")
    } else {
        None
    }
}

/// IBAN-shaped substrings of `text` whose mod-97 check holds (spaces
/// between groups allowed).
fn find_ibans(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary
            && b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
        {
            // The longest run of alphanumerics and single spaces.
            let mut end = i + 4;
            while end < b.len() {
                let single_space =
                    b[end] == b' ' && end + 1 < b.len() && b[end + 1].is_ascii_alphanumeric();
                if b[end].is_ascii_alphanumeric() || single_space {
                    end += 1;
                } else {
                    break;
                }
            }
            // Shrink at spaces until the key checks (a word may follow).
            let mut cand = end;
            loop {
                let s = &text[i..cand];
                let compact: String = s.chars().filter(|c| *c != ' ').collect();
                if (15..=34).contains(&compact.len()) && iban_valid(&compact) {
                    out.push(s);
                    i = cand;
                    break;
                }
                match s.rfind(' ') {
                    Some(sp) if sp > 4 => cand = i + sp,
                    _ => {
                        i += 1;
                        break;
                    }
                }
            }
            continue;
        }
        i += 1;
    }
    out
}

fn iban_valid(compact: &str) -> bool {
    if !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Runs of 11 to 19 digits standing alone (not inside a longer word), but
/// not millisecond timestamps between 2000 and 2100.
fn find_account_numbers(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let before_ok = start == 0 || !b[start - 1].is_ascii_alphanumeric();
        let after_ok = i == b.len() || !b[i].is_ascii_alphanumeric();
        let run = &text[start..i];
        if before_ok && after_ok && (11..=19).contains(&run.len()) && !looks_like_millis(run) {
            out.push(run);
        }
    }
    out
}

fn looks_like_millis(run: &str) -> bool {
    run.len() == 13
        && run
            .parse::<u64>()
            .is_ok_and(|v| (946_684_800_000..=4_102_444_800_000).contains(&v))
}

/// Numbered placeholders as wildcards of their kind (`__COOKIE_3__` →
/// `__COOKIE_*__`), for matching a replayed request against a recorded
/// one.
pub fn wildcard(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("__") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // A placeholder: uppercase kind, `_`, digits, `__`.
        let kind_len = after.bytes().take_while(|b| b.is_ascii_uppercase()).count();
        let tail = &after[kind_len..];
        let digits = tail
            .strip_prefix('_')
            .map(|t| t.bytes().take_while(u8::is_ascii_digit).count())
            .unwrap_or(0);
        if kind_len > 0 && digits > 0 && tail[1 + digits..].starts_with("__") {
            out.push_str("__");
            out.push_str(&after[..kind_len]);
            out.push_str("_*__");
            rest = &tail[1 + digits + 2..];
        } else {
            out.push_str("__");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ibans_are_found_by_their_key() {
        let t = "pay to FR76 3000 6000 0112 3456 7890 189 today, not FR00 1234 5678 9012 3456";
        assert_eq!(find_ibans(t), vec!["FR76 3000 6000 0112 3456 7890 189"]);
        assert_eq!(
            find_ibans("\"iban\":\"DE89370400440532013000\""),
            vec!["DE89370400440532013000"]
        );
    }

    #[test]
    fn long_digits_but_not_timestamps() {
        let t = "acct 12345678901 ts=1701234567890 phone 0612345678 x123456789012";
        assert_eq!(find_account_numbers(t), vec!["12345678901"]);
    }

    #[test]
    fn placeholders_become_wildcards() {
        assert_eq!(
            wildcard("a=__COOKIE_12__&b=__SECRET_password__&c=__x"),
            "a=__COOKIE_*__&b=__SECRET_password__&c=__x"
        );
    }

    #[test]
    fn same_value_same_placeholder_in_every_form() {
        let mut s = Scrubber::new();
        s.add_secret("password", "p@ss word!");
        s.learn("abcdef123", "COOKIE");
        s.learn("abcdef123", "TOKEN");
        assert_eq!(
            s.scrub_text("pwd=p%40ss+word%21&c=abcdef123 p@ss word!"),
            "pwd=__SECRET_password__&c=__COOKIE_1__ __SECRET_password__"
        );
        s.add_field("login", "12345678");
        assert_eq!(
            s.scrub_text("login=12345678 phone=0612345678"),
            "login=__FIELD_login__ phone=0612345678"
        );
    }
}
