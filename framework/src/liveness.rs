//! Whether a process that left something behind (a staging folder, a job
//! lease) is still alive: `host:pid` marks, checked through `/proc`.
//!
//! The answer is "dead" only when it is certain: same host, `/proc`
//! available, and no such pid, or a zombie (`/proc/<pid>/stat` state `Z`
//! or `X`: the process has exited and only waits for its parent to reap
//! it). Another host, or no `/proc`, gives "alive",
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
    if process_host != host() || pid == std::process::id() || !Path::new("/proc/self").exists() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => matches!(stat_state(&stat), Some('Z' | 'X')),
        Err(_) => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// The state letter of a `/proc/<pid>/stat` line: the first field after
/// the command name, which is in parentheses and may itself hold `)`.
fn stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
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

    #[test]
    fn the_state_is_read_after_the_last_parenthesis() {
        assert_eq!(stat_state("42 (a) b) Z 1 2 3"), Some('Z'));
        assert_eq!(stat_state("42 (sleep) S 1 2 3"), Some('S'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn a_zombie_is_dead() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let Ok(mut child) = std::process::Command::new("true").spawn() else {
            return;
        };
        let pid = child.id();
        // Wait until it has exited, without reaping it.
        let stat = format!("/proc/{pid}/stat");
        let mut zombie = false;
        for _ in 0..1000 {
            let state = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| stat_state(&s));
            if state == Some('Z') {
                zombie = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(zombie, "the child never became a zombie");
        assert!(is_dead(host(), pid), "a zombie reads as alive");
        assert!(mark_is_dead(&format!("{}:{pid}", host())));
        let _ = child.wait();
    }
}
