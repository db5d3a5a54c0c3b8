//! Worker names on job leases: `role@host:pid:nonce`.
//!
//! A lease that runs out always frees a job. On the same host, a job whose
//! worker process is gone is freed at once, without waiting for its lease
//! (see [`gleaner_framework::liveness`]): after a crash, `gleaner run` or a
//! restarted daemon takes the account back immediately.

use gleaner_framework::liveness;

/// A new worker name for this process.
pub fn new(role: &str) -> String {
    format!(
        "{role}@{}:{}",
        liveness::this_process(),
        &crate::new_run_suffix()[..8]
    )
}

/// Whether `owner` names a process of this host that no longer exists.
/// `false` when it cannot tell.
pub fn is_dead(owner: &str) -> bool {
    owner
        .split_once('@')
        .and_then(|(_, rest)| rest.rsplit_once(':'))
        .is_some_and(|(mark, _nonce)| liveness::mark_is_dead(mark))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_pid_is_dead() {
        assert!(!is_dead(&new("test")));
        let gone = format!("test@{}:{}:abcd", liveness::host(), u32::MAX - 1);
        assert_eq!(is_dead(&gone), std::path::Path::new("/proc/self").exists());
        assert!(!is_dead(&format!("test@other-host:{}:abcd", u32::MAX - 1)));
        assert!(!is_dead("not-an-owner"));
    }
}
