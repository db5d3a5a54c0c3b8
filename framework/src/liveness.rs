//! Whether a process that left something behind (a staging folder, a job
//! lease) is still alive: `host:pid` marks, checked through `/proc`.
//!
//! The answer is "dead" only when it is certain: same host, `/proc`
//! available, and no such pid. Another host, or no `/proc`, gives "alive",
//! so callers fall back on time limits. A reused pid also reads as alive:
//! the safe direction.

use std::path::Path;
use std::sync::OnceLock;

/// This machine's name (`/proc/sys/kernel/hostname`, else `HOSTNAME`),
/// without `:` or `@`.
pub fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().replace([':', '@'], "_"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    })
}

/// This process's mark: `host:pid`.
pub fn this_process() -> String {
    format!("{}:{}", host(), std::process::id())
}

/// Whether the process of `host` and `pid` is certainly gone.
pub fn is_dead(process_host: &str, pid: u32) -> bool {
    process_host == host()
        && pid != std::process::id()
        && Path::new("/proc/self").exists()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// [`is_dead`] for a `host:pid` mark; `false` for anything else.
pub fn mark_is_dead(mark: &str) -> bool {
    match mark.trim().rsplit_once(':') {
        Some((h, pid)) => pid.parse().is_ok_and(|pid| is_dead(h, pid)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_pid_is_dead() {
        assert!(!mark_is_dead(&this_process()));
        let gone = format!("{}:{}", host(), u32::MAX - 1);
        assert_eq!(mark_is_dead(&gone), Path::new("/proc/self").exists());
        assert!(!mark_is_dead(&format!("elsewhere:{}", u32::MAX - 1)));
        assert!(!mark_is_dead("garbage"));
    }
}
