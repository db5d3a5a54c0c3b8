//! Replays every stored fuzz input through its target's check, without
//! libFuzzer or a sanitizer build: each file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`, and the repository's real inputs that
//! `fuzz/run-ci.sh` seeds the targets with (the fixtures' pages and JSON,
//! the konnectors' manifests). One failure report lists every input that
//! broke a property, by file; the counts per target are printed
//! (`cargo test -p gleaner-fuzz-checks --test corpus -- --nocapture`).
#![allow(clippy::unwrap_used, missing_docs)]

use gleaner_fuzz_checks::TARGETS;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The repository's real inputs each target also reads, as in
/// `fuzz/run-ci.sh` (folders relative to the repository, read recursively).
fn seeds(target: &str) -> &'static [&'static str] {
    match target {
        "free_mobile_pages" => &["fixtures/free-mobile"],
        "enedis_map" => &["fixtures/enedis"],
        "manifest" => &[
            "konnectors/src/telco/free_mobile",
            "konnectors/src/energy/enedis",
        ],
        _ => &[],
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every file under `dir`, recursively (as libFuzzer reads a corpus
/// folder), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The names of the entries of `dir` (files without their extension).
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            path.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect()
}

thread_local! {
    /// Set while this thread replays inputs: their panics are caught and
    /// reported together, not printed one by one.
    static REPLAYING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps the default panic output for everything but the replay's own
/// caught panics.
fn quiet_replay_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !REPLAYING.with(Cell::get) {
                default(info);
            }
        }));
    });
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "a panic without a message".to_string()
    }
}

#[test]
fn every_stored_input_passes_its_targets_check() {
    quiet_replay_panics();
    let root = root();
    let mut failures = Vec::new();
    let mut total = 0;
    for target in TARGETS {
        let corpus = root.join("fuzz/corpus").join(target.name);
        let regressions = root.join("fuzz/regressions").join(target.name);
        let mut groups = vec![("corpus", files(&corpus))];
        if regressions.is_dir() {
            groups.push(("regressions", files(&regressions)));
        }
        let seed_files = seeds(target.name)
            .iter()
            .flat_map(|dir| files(&root.join(dir)))
            .collect();
        groups.push(("seeds", seed_files));
        assert!(
            !groups[0].1.is_empty(),
            "{}: no stored corpus",
            corpus.display()
        );
        let mut counts = Vec::new();
        let mut replayed = 0;
        for (group, inputs) in &groups {
            for path in inputs {
                let data = std::fs::read(path).unwrap();
                REPLAYING.with(|r| r.set(true));
                let result = panic::catch_unwind(AssertUnwindSafe(|| (target.check)(&data)));
                REPLAYING.with(|r| r.set(false));
                if let Err(payload) = result {
                    let file = path.strip_prefix(&root).unwrap_or(path);
                    failures.push(format!(
                        "{}: {}: {}",
                        target.name,
                        file.display(),
                        message(payload.as_ref())
                    ));
                }
            }
            if !inputs.is_empty() {
                counts.push(format!("{} {group}", inputs.len()));
            }
            replayed += inputs.len();
        }
        println!(
            "{}: {replayed} inputs replayed ({})",
            target.name,
            counts.join(", ")
        );
        total += replayed;
    }
    println!("{total} inputs replayed in all");
    assert!(
        failures.is_empty(),
        "{} of {total} stored fuzz inputs broke their target's check:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every target under `fuzz/fuzz_targets/`, every corpus folder and every
/// regressions folder has a check here: a new target cannot be left out of
/// the replay above.
#[test]
fn every_fuzz_target_has_a_check() {
    let root = root();
    let checked: BTreeSet<String> = TARGETS.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names(&root.join("fuzz/fuzz_targets")), checked);
    assert_eq!(names(&root.join("fuzz/corpus")), checked);
    let regressions = names(&root.join("fuzz/regressions"));
    assert!(
        regressions.is_subset(&checked),
        "regressions of unknown targets: {:?}",
        regressions.difference(&checked).collect::<Vec<_>>()
    );
}
