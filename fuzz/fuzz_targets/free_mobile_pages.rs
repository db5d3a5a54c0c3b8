//! The `free_mobile_pages` target: its properties are checked by
//! `gleaner_fuzz_checks::check_free_mobile_pages` (fuzz-checks/src/free_mobile_pages.rs), which the
//! workspace's tests also run on the stored corpus and regressions.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gleaner_fuzz_checks::check_free_mobile_pages(data));
