//! The `enedis_map` target: its properties are checked by
//! `gleaner_fuzz_checks::check_enedis_map` (fuzz-checks/src/enedis_map.rs), which the
//! workspace's tests also run on the stored corpus and regressions.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gleaner_fuzz_checks::check_enedis_map(data));
