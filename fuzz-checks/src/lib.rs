//! The properties of the `cargo fuzz` targets under `fuzz/`, as plain
//! functions, one per target: `check_<target>(data)` returns when the input
//! is fine and panics, naming the broken property, when it is not.
//!
//! Two callers share them. Each target in `fuzz/fuzz_targets/` is one line
//! calling its check under libFuzzer (long runs, AddressSanitizer: see
//! docs/fuzzing.md), and this crate's test `tests/corpus.rs` replays every
//! stored input (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/` and
//! the repository's real pages, JSON and manifests) through them on every
//! `cargo test --workspace`, without a sanitizer build.
//!
//! Keep the dependencies to what the checks use: `fuzz/` builds each one
//! again under the sanitizer.

pub mod amount;
pub mod config;
pub mod cron;
pub mod date;
pub mod enedis_map;
pub mod free_mobile_pages;
pub mod manifest;

pub use amount::check_amount;
pub use config::check_config;
pub use cron::check_cron;
pub use date::check_date;
pub use enedis_map::check_enedis_map;
pub use free_mobile_pages::check_free_mobile_pages;
pub use manifest::check_manifest;

/// One fuzz target: its name (as `cargo fuzz list` prints it, and the
/// folder name under `fuzz/corpus/` and `fuzz/regressions/`) and its check.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name, e.g. `amount`.
    pub name: &'static str,
    /// The check the target runs on each input.
    pub check: fn(&[u8]),
}

/// Every fuzz target, in `fuzz/Cargo.toml`'s order.
pub const TARGETS: &[Target] = &[
    Target {
        name: "amount",
        check: check_amount,
    },
    Target {
        name: "date",
        check: check_date,
    },
    Target {
        name: "manifest",
        check: check_manifest,
    },
    Target {
        name: "config",
        check: check_config,
    },
    Target {
        name: "free_mobile_pages",
        check: check_free_mobile_pages,
    },
    Target {
        name: "enedis_map",
        check: check_enedis_map,
    },
    Target {
        name: "cron",
        check: check_cron,
    },
];
