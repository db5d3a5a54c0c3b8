//! Redaction and key-derivation figures.
//!
//! Run with `cargo bench --bench redaction`. A plain program
//! (`harness = false`) that prints figures and asserts nothing on time:
//! - scrub throughput with 1,000 registered secrets (each in its 4 to 7
//!   registered forms) on a 200-byte log line, clean and with one secret;
//! - one Argon2id derivation with the default parameters (m = 19 MiB, t = 2);
//! - registering one secret of 1 KB, 10 KB, 100 KB and 1 MB (what
//!   `Secret::new` does with a password opened from the vault), each in a
//!   fresh child process so that no earlier registration changes the
//!   automaton it builds: time, time per KB (flat when registration is
//!   linear) and peak RSS.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Instant;

use gleaner_framework::Secret;
use gleaner_framework::redact;
use gleaner_framework::vault::{KdfParams, Vault};

/// Set in the child process that measures one registration: the size in bytes.
const REGISTER_CHILD_ENV: &str = "GLEANER_BENCH_REGISTER_BYTES";

/// A password-like value of `len` bytes: letters, digits and about one
/// special character in eight (so its percent-encoded forms differ from it).
fn password(len: usize) -> String {
    const CHARS: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$&+/= %#";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(CHARS[(x % CHARS.len() as u64) as usize])
        })
        .collect()
}

/// Set in the child process to register one repeated character instead of
/// a password-like value (the worst case of the old DFA construction).
const REGISTER_REPEATED_ENV: &str = "GLEANER_BENCH_REGISTER_REPEATED";

/// The child: registers one secret of the given size and prints the time
/// and peak RSS on one line.
fn register_child(len: usize) {
    let value = if std::env::var(REGISTER_REPEATED_ENV).is_ok_and(|v| !v.is_empty()) {
        "a".repeat(len)
    } else {
        password(len)
    };
    let start = Instant::now();
    let secret = Secret::new(value);
    let elapsed = start.elapsed();
    assert_eq!(redact::scrub(secret.expose()), redact::MASK);
    println!(
        "{} {} {}",
        elapsed.as_nanos(),
        redact::registered_forms(),
        common::status_kib("VmHWM").unwrap_or(0)
    );
}

fn register_figures() {
    for repeated in [false, true] {
        println!(
            "register one secret, {} (fresh process each):",
            if repeated {
                "one character repeated"
            } else {
                "password-like"
            }
        );
        register_sizes(repeated);
    }
}

fn register_sizes(repeated: bool) {
    for (name, len) in [
        ("1 KB", 1_000),
        ("10 KB", 10_000),
        ("100 KB", 100_000),
        ("1 MB", 1_000_000),
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env(REGISTER_CHILD_ENV, len.to_string())
            .env(REGISTER_REPEATED_ENV, if repeated { "1" } else { "" })
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut parts = text.split_whitespace();
        let nanos: f64 = parts.next().unwrap().parse().unwrap();
        let forms: usize = parts.next().unwrap().parse().unwrap();
        let peak_kib: u64 = parts.next().unwrap().parse().unwrap();
        let ms = nanos / 1e6;
        let per_kb = nanos / 1e3 / (len as f64 / 1000.0);
        println!(
            "  {name:>6}: {ms:10.2} ms, {per_kb:8.1} µs per KB, {forms} forms, peak RSS {:.1} MiB",
            peak_kib as f64 / 1024.0
        );
    }
}

fn main() {
    if let Ok(len) = std::env::var(REGISTER_CHILD_ENV) {
        register_child(len.parse().unwrap());
        return;
    }
    let secrets: Vec<Secret> = (0..1000)
        .map(|i| {
            Secret::new(format!(
                "tok_{i:04}_{:016x}",
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ))
        })
        .collect();
    println!("registered forms: {}", redact::registered_forms());

    let clean = format!(
        "{:<200}",
        "2025-01-01T00:00:00Z INFO konnector_run{konnector=free-mobile account=acc1 run=abc}: http method=GET url=https://mobile.free.fr/account/ status=200 elapsed_ms=12"
    );
    let dirty = format!("{} token={}", &clean[..180], secrets[500].expose());
    for (name, line) in [
        ("clean 200-byte line", &clean),
        ("line with a secret", &dirty),
    ] {
        let n = 200_000u32;
        let start = Instant::now();
        for _ in 0..n {
            black_box(redact::scrub(black_box(line)));
        }
        let elapsed = start.elapsed();
        let per = elapsed / n;
        let mb_s = (line.len() as f64 * f64::from(n)) / elapsed.as_secs_f64() / 1e6;
        println!("scrub, {name}: {per:?} per line, {mb_s:.0} MB/s");
    }
    assert!(redact::scrub(&dirty).contains(redact::MASK));

    let dir = std::env::temp_dir().join(format!("gleaner-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let header = dir.join("vault.header");
    let pass = Secret::new("bench passphrase");
    let start = Instant::now();
    Vault::create_with_passphrase(&header, &pass, KdfParams::LAPTOP).unwrap();
    let created = start.elapsed();
    let start = Instant::now();
    Vault::open_with_passphrase(&header, &pass).unwrap();
    println!(
        "argon2id m=19 MiB t=2 p=1: create {created:?}, open {:?}",
        start.elapsed()
    );
    std::fs::remove_dir_all(&dir).unwrap();

    register_figures();
}
