//! The `cron` target: its properties are checked by
//! `gleaner_fuzz_checks::check_cron` (fuzz-checks/src/cron.rs), which the
//! workspace's tests also run on the stored corpus and regressions.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gleaner_fuzz_checks::check_cron(data));
