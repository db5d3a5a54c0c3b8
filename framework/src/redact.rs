//! Redaction: every secret value the process has seen is masked in text
//! that leaves it (log lines, error messages, job records).
//!
//! [`crate::Secret::new`] registers its value here, so credentials opened
//! from the vault, passphrases, session cookies and tokens obtained at run
//! time are covered without the konnector doing anything. [`scrub`] replaces
//! every registered value, and its encoded forms, by [`MASK`].
//!
//! Where masking happens:
//! - [`crate::KonnectorError::new`] scrubs its message, so no error built
//!   through the framework carries a registered secret;
//! - [`RedactingWriter`] wraps a `tracing_subscriber` writer and scrubs
//!   every formatted line (human or JSON) before it is written;
//! - job records and anything else a caller writes can call [`scrub`].
//!
//! Each value is registered in several forms, because secrets reach text
//! through URLs and form bodies: the raw value, its
//! `application/x-www-form-urlencoded` form (`+` for spaces), its
//! percent-encoded form (`%20`), and, for values of 8 bytes or more, its
//! standard and URL-safe base64 forms (Basic auth headers, tokens in JSON).
//!
//! Matching uses the `aho-corasick` crate: one automaton over every
//! registered form, rebuilt when a value is registered (rare: a few times a
//! run) and shared lock-free-ish (an `Arc` swapped under a short lock) by
//! every scrub (frequent: every log line). Leftmost-longest matching masks a
//! secret that contains another one whole.
//!
//! The automaton is always a contiguous NFA, whose construction is linear
//! in the total length of the forms. The crate's default picks a DFA for
//! fewer than 100 patterns, and building that DFA grew with the square of a
//! long secret's length (issue 8: a 10 KB password took 4.2 s before the
//! run started, 100 KB almost 8 minutes) and took memory in proportion to
//! length times alphabet. `benches/redaction.rs` prints the figures.
//!
//! Limits: values shorter than [`MIN_LEN`] are not registered; a secret
//! split across two writes, or transformed in a way not listed above
//! (hex, lowercased, truncated), is not recognised.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::sync::{Arc, OnceLock, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use base64::Engine as _;

/// What a masked value becomes.
pub const MASK: &str = "[REDACTED]";

/// Values shorter than this are not registered: masking every `1` or `ab`
/// would garble every log line, and such values are not secrets.
pub const MIN_LEN: usize = 4;

/// Values at least this long are also registered in base64 forms (shorter
/// ones would give base64 strings too short to be specific).
const MIN_LEN_BASE64: usize = 8;

/// The registered forms and the automaton built from them.
struct Registry {
    forms: BTreeSet<String>,
    matcher: Option<Arc<AhoCorasick>>,
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        RwLock::new(Registry {
            forms: BTreeSet::new(),
            matcher: None,
        })
    })
}

/// RFC 3986 unreserved characters, left alone by [`percent_encoded`].
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Every byte outside RFC 3986's unreserved set as `%XX` (the `url`
/// crate's form encoder only gives the `+` form).
fn percent_encoded(value: &str, upper: bool) -> String {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(digits[usize::from(b >> 4)]));
            out.push(char::from(digits[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Every form under which `value` is masked.
pub(crate) fn forms_of(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
    forms.push(percent_encoded(value, true));
    forms.push(percent_encoded(value, false));
    if value.len() >= MIN_LEN_BASE64 {
        let b = value.as_bytes();
        forms.push(base64::engine::general_purpose::STANDARD.encode(b));
        forms.push(base64::engine::general_purpose::STANDARD_NO_PAD.encode(b));
        forms.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b));
    }
    forms.retain(|f| f.len() >= MIN_LEN);
    forms
}

/// Registers a secret value to mask from now on.
pub fn register(value: &str) {
    register_all([value]);
}

/// Registers several values at once (one automaton rebuild for all).
pub fn register_all<'a>(values: impl IntoIterator<Item = &'a str>) {
    let new_forms: Vec<String> = values
        .into_iter()
        .filter(|v| v.len() >= MIN_LEN)
        .flat_map(forms_of)
        .collect();
    if new_forms.is_empty() {
        return;
    }
    let mut reg = match registry().write() {
        Ok(r) => r,
        Err(poisoned) => poisoned.into_inner(),
    };
    let before = reg.forms.len();
    reg.forms.extend(new_forms);
    if reg.forms.len() == before {
        return;
    }
    match build(&reg.forms) {
        Ok(ac) => reg.matcher = Some(Arc::new(ac)),
        // Building only fails past internal size limits; keep the previous
        // automaton and say so (without the value).
        Err(e) => eprintln!("gleaner: the redaction automaton could not be rebuilt: {e}"),
    }
}

/// The automaton over `forms`, built in time linear in their total length.
fn build(forms: &BTreeSet<String>) -> Result<AhoCorasick, aho_corasick::BuildError> {
    // Leftmost-longest: of two secrets starting at the same place, the
    // longer is masked whole. Never a DFA (see the module's documentation);
    // a contiguous NFA, or a non-contiguous one past its size limits.
    let builder = |kind| {
        AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(kind))
            .build(forms.iter())
    };
    builder(AhoCorasickKind::ContiguousNFA).or_else(|_| builder(AhoCorasickKind::NoncontiguousNFA))
}

/// How many forms are registered (for tests and benches).
pub fn registered_forms() -> usize {
    match registry().read() {
        Ok(r) => r.forms.len(),
        Err(poisoned) => poisoned.into_inner().forms.len(),
    }
}

fn matcher() -> Option<Arc<AhoCorasick>> {
    match registry().read() {
        Ok(r) => r.matcher.clone(),
        Err(poisoned) => poisoned.into_inner().matcher.clone(),
    }
}

/// The text with every registered secret masked.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let Some(ac) = matcher() else {
        return Cow::Borrowed(text);
    };
    if !ac.is_match(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    ac.replace_all_with(text, &mut out, |_, _, dst| {
        dst.push_str(MASK);
        true
    });
    Cow::Owned(out)
}

/// Like [`scrub`] for bytes (lossless for non-UTF-8 bytes around secrets).
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let Some(ac) = matcher() else {
        return Cow::Borrowed(bytes);
    };
    if !ac.is_match(bytes) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    ac.replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
        dst.extend_from_slice(MASK.as_bytes());
        true
    });
    Cow::Owned(out)
}

/// A `tracing_subscriber` [`MakeWriter`](tracing_subscriber::fmt::MakeWriter)
/// that scrubs every formatted event before it reaches the inner writer.
///
/// `tracing_subscriber`'s formatters write one event per `write` call
/// (they format into a buffer first), so a secret is never split between
/// two calls; the writer also buffers until it is dropped, so it scrubs
/// whole events even with writers that do not.
///
/// ```no_run
/// use gleaner_framework::redact::RedactingWriter;
/// tracing_subscriber::fmt()
///     .with_writer(RedactingWriter::new(std::io::stderr))
///     .init();
/// ```
#[derive(Debug, Clone)]
pub struct RedactingWriter<M> {
    inner: M,
}

impl<M> RedactingWriter<M> {
    /// Wraps a `MakeWriter` (such as `std::io::stderr`).
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

/// The writer [`RedactingWriter`] hands out for one event.
pub struct RedactingEventWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> RedactingEventWriter<W> {
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let scrubbed = scrub_bytes(&self.buf);
        self.inner.write_all(&scrubbed)?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for RedactingEventWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingEventWriter<W> {
    fn drop(&mut self) {
        // Errors cannot be reported from a drop; a log line is lost at worst.
        let _ = self.flush_buf();
        let _ = self.inner.flush();
    }
}

impl<'a, M> tracing_subscriber::fmt::MakeWriter<'a> for RedactingWriter<M>
where
    M: tracing_subscriber::fmt::MakeWriter<'a>,
{
    type Writer = RedactingEventWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingEventWriter {
            inner: self.inner.make_writer(),
            buf: Vec::with_capacity(256),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingEventWriter {
            inner: self.inner.make_writer_for(meta),
            buf: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn registered_values_are_masked_plain_and_url_encoded() {
        register("s3cr&t value");
        assert_eq!(scrub("pw=s3cr&t value!"), "pw=[REDACTED]!");
        assert_eq!(scrub("/x?pw=s3cr%26t+value"), "/x?pw=[REDACTED]");
        assert_eq!(scrub("/x?pw=s3cr%26t%20value"), "/x?pw=[REDACTED]");
        assert_eq!(scrub("nothing here"), "nothing here");
        assert!(matches!(scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn lowercase_percent_escapes_and_base64_are_masked() {
        register("tok/en=with:colons");
        assert_eq!(scrub("u=tok%2fen%3dwith%3acolons"), "u=[REDACTED]");
        let basic = base64::engine::general_purpose::STANDARD.encode("tok/en=with:colons");
        assert_eq!(
            scrub(&format!("Authorization: Basic {basic}")),
            "Authorization: Basic [REDACTED]"
        );
    }

    #[test]
    fn short_values_are_not_registered() {
        register("ab");
        assert_eq!(scrub("abc"), "abc");
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        register("innerpart");
        register("outer-innerpart-outer");
        assert_eq!(scrub("x outer-innerpart-outer y"), "x [REDACTED] y");
        assert_eq!(scrub("x innerpart y"), "x [REDACTED] y");
    }

    #[test]
    fn many_secrets_in_one_line_are_all_masked() {
        let values: Vec<String> = (0..50).map(|i| format!("many-secret-{i:03}")).collect();
        register_all(values.iter().map(String::as_str));
        let line = values.join(" | ");
        let scrubbed = scrub(&line);
        assert!(!scrubbed.contains("many-secret"), "{scrubbed}");
        assert_eq!(scrubbed.matches(MASK).count(), 50);
    }

    /// Issue 8: building the automaton for one long secret grew with the
    /// square of its length (the crate's DFA). No timing here: the
    /// automaton must not be a DFA, and its memory must stay in proportion
    /// to the forms' total length.
    #[test]
    fn a_long_secret_builds_a_linear_automaton() {
        let value: String = (0..4096u32)
            .map(|i| char::from(b"aZ3%& /+=~q"[(i * 7 % 11) as usize]))
            .collect();
        let forms: BTreeSet<String> = forms_of(&value).into_iter().collect();
        let total: usize = forms.iter().map(String::len).sum();
        let ac = build(&forms).unwrap();
        assert_ne!(ac.kind(), AhoCorasickKind::DFA);
        assert!(
            ac.memory_usage() < 64 * total,
            "{} bytes of automaton for {total} bytes of forms",
            ac.memory_usage()
        );
        assert_eq!(ac.find_iter(value.as_str()).count(), 1);
    }

    #[test]
    fn percent_encoding_matches_the_url_crate() {
        let value = "a b&c/é~";
        assert_eq!(percent_encoded(value, true), "a%20b%26c%2F%C3%A9~");
        assert_eq!(percent_encoded(value, false), "a%20b%26c%2f%c3%a9~");
    }

    #[test]
    fn scrub_bytes_keeps_non_utf8_bytes() {
        register("bytes-secret");
        let input = b"\xff bytes-secret \xfe";
        assert_eq!(&*scrub_bytes(input), b"\xff [REDACTED] \xfe");
    }

    /// A MakeWriter that collects into a shared buffer.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    #[test]
    fn the_writer_masks_human_and_json_lines() {
        let secret = crate::Secret::new("writer-test-token-123");
        for json in [false, true] {
            let sink = Sink::default();
            let builder = tracing_subscriber::fmt()
                .with_writer(RedactingWriter::new(sink.clone()))
                .with_ansi(false);
            let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = if json {
                Box::new(builder.json().finish())
            } else {
                Box::new(builder.finish())
            };
            tracing::subscriber::with_default(subscriber, || {
                tracing::warn!(
                    url = %format!("https://x.example/cb?token={}", secret.expose()),
                    "got {}",
                    secret.expose()
                );
            });
            let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            assert!(out.contains("got [REDACTED]"), "{out}");
            assert!(out.contains("token=[REDACTED]"), "{out}");
            assert!(!out.contains("writer-test-token-123"), "{out}");
        }
    }
}
