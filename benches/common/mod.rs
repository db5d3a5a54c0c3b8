//! What the benchmarks share: reading the process's memory figures.

/// A field of `/proc/self/status` (such as `VmHWM`, `VmRSS`), in KiB;
/// `None` where there is no such file (not Linux).
#[allow(dead_code)] // The web bench measures its server, not itself.
pub fn status_kib(field: &str) -> Option<u64> {
    status_file_kib("/proc/self/status", field)
}

/// The same field of another process (`/proc/<pid>/status`).
#[allow(dead_code)] // Only the web bench measures another process.
pub fn pid_status_kib(pid: u32, field: &str) -> Option<u64> {
    status_file_kib(&format!("/proc/{pid}/status"), field)
}

fn status_file_kib(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
