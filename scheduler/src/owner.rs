//! Worker names on job leases: `role@host:pid:nonce`.
//!
//! A lease that runs out always frees a job. On the same host, a job whose
//! worker process is gone is freed at once, without waiting for its lease:
//! after a crash, `gleaner run` or a restarted daemon takes the account
//! back immediately. A reused pid only makes the check wait for the lease,
//! never free a live worker's job.

use std::path::Path;
use std::sync::OnceLock;

/// This machine's name (`/proc/sys/kernel/hostname`, else `HOSTNAME`).
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

/// A new worker name for this process.
pub fn new(role: &str) -> String {
    format!(
        "{role}@{}:{}:{}",
        host(),
        std::process::id(),
        &crate::new_run_suffix()[..8]
    )
}

/// Whether `owner` names a process of this host that no longer exists.
/// `false` when it cannot tell (another host, no `/proc`).
pub fn is_dead(owner: &str) -> bool {
    let Some((_, rest)) = owner.split_once('@') else {
        return false;
    };
    let mut parts = rest.rsplitn(3, ':');
    let (_nonce, pid, owner_host) = (parts.next(), parts.next(), parts.next());
    let (Some(pid), Some(owner_host)) = (pid.and_then(|p| p.parse::<u32>().ok()), owner_host)
    else {
        return false;
    };
    if owner_host != host() || !Path::new("/proc/self").exists() {
        return false;
    }
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_pid_is_dead() {
        let me = new("test");
        assert!(!is_dead(&me));
        let gone = format!("test@{}:{}:abcd", host(), u32::MAX - 1);
        assert_eq!(is_dead(&gone), Path::new("/proc/self").exists());
        assert!(!is_dead(&format!("test@other-host:{}:abcd", u32::MAX - 1)));
        assert!(!is_dead("not-an-owner"));
    }
}
