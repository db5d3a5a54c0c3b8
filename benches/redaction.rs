//! Redaction and key-derivation figures.
//!
//! Run with `cargo bench --bench redaction`. A plain program
//! (`harness = false`) that prints figures and asserts nothing on time:
//! - scrub throughput with 1,000 registered secrets (each in its 4 to 7
//!   registered forms) on a 200-byte log line, clean and with one secret;
//! - one Argon2id derivation with the default parameters (m = 19 MiB, t = 2).

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use gleaner_framework::Secret;
use gleaner_framework::redact;
use gleaner_framework::vault::{KdfParams, Vault};

fn main() {
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
}
