//! What the benchmarks share: reading the process's memory figures.

/// A field of `/proc/self/status` (such as `VmHWM`, `VmRSS`), in KiB;
/// `None` where there is no such file (not Linux).
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
