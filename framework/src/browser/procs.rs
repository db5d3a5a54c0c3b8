//! Finding, measuring and ending a session's chromium processes.
//!
//! Chromium is a tree: the browser process, two zygotes, the renderers
//! (forked from a zygote), the GPU and utility processes, and two crash
//! handlers that double-fork away from the tree (their parent is init).
//! Every one of them carries the session's unique temporary directory on
//! its command line (`--user-data-dir=...` for the tree, and the crash
//! handlers' `--database=...`, because the session points
//! `XDG_CONFIG_HOME` into that directory), so the session finds them all
//! by that marker, plus the browser process's descendants by parent id.
//!
//! Killing the browser process alone does end the others here (they watch
//! their parent), but not at once; the session signals every process of
//! the set with `SIGKILL`, so none outlives the session, whatever the
//! order chromium would shut down in.
//!
//! Linux only (`/proc`); elsewhere these find nothing and the session
//! relies on headless_chrome killing the browser process.

use std::collections::BTreeSet;
use std::path::Path;

/// One line of `/proc/<pid>/stat`, the fields we need.
struct Stat {
    ppid: u32,
    state: char,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Stat { ppid, state })
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The live (not zombie) processes whose command line contains `marker`,
/// and the live descendants of `root` (when given). Zombies are left out:
/// they are dead, hold no memory and only wait for their parent (or, for
/// orphans, init) to reap them.
pub fn session_processes(marker: &Path, root: Option<u32>) -> BTreeSet<u32> {
    let marker = marker.to_string_lossy();
    let pids = all_pids();
    let stats: Vec<(u32, Stat)> = pids
        .into_iter()
        .filter_map(|p| stat(p).map(|s| (p, s)))
        .filter(|(_, s)| s.state != 'Z' && s.state != 'X')
        .collect();
    let mut found: BTreeSet<u32> = stats
        .iter()
        .filter(|(p, _)| !marker.is_empty() && cmdline(*p).contains(marker.as_ref()))
        .map(|(p, _)| *p)
        .collect();
    if let Some(root) = root
        && stats.iter().any(|(p, _)| *p == root)
    {
        found.insert(root);
    }
    // Descendants of anything found (parent links), to a fixed point.
    loop {
        let before = found.len();
        for (p, s) in &stats {
            if found.contains(&s.ppid) {
                found.insert(*p);
            }
        }
        if found.len() == before {
            break;
        }
    }
    found
}

/// Sends `SIGKILL` to every process of the session; returns how many were
/// signalled.
pub fn kill_session(marker: &Path, root: Option<u32>) -> usize {
    let pids = session_processes(marker, root);
    for pid in &pids {
        kill(*pid);
    }
    pids.len()
}

#[cfg(unix)]
fn kill(pid: u32) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::KILL) {
        tracing::debug!(pid = pid.as_raw_nonzero().get(), error = %e, "could not kill a chromium process");
    }
}

#[cfg(not(unix))]
fn kill(_pid: u32) {}

/// Memory of a set of processes, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeMemory {
    /// Processes measured.
    pub processes: usize,
    /// Sum of the resident set sizes now (`VmRSS`).
    pub rss_kib: u64,
    /// Sum of each process's peak resident set (`VmHWM`).
    pub peak_rss_kib: u64,
}

/// Sums `VmRSS` and `VmHWM` over `pids`. Shared pages (chromium's code,
/// shared memory between processes) count once per process, so this is
/// an upper bound of the memory the session really holds.
pub fn tree_memory(pids: &BTreeSet<u32>) -> TreeMemory {
    let mut m = TreeMemory::default();
    for pid in pids {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        m.processes += 1;
        for line in status.lines() {
            let value = |l: &str| -> u64 {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                m.rss_kib += value(line);
            } else if line.starts_with("VmHWM:") {
                m.peak_rss_kib += value(line);
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_by_its_marker_and_as_a_root() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap_or_default();
        assert!(session_processes(&exe, None).contains(&me));
        assert!(session_processes(Path::new(""), Some(me)).contains(&me));
        let m = tree_memory(&BTreeSet::from([me]));
        assert_eq!(m.processes, 1);
        assert!(m.rss_kib > 0 && m.peak_rss_kib >= m.rss_kib, "{m:?}");
    }

    #[test]
    fn a_marker_nobody_has_finds_nothing() {
        assert!(session_processes(Path::new("/nonexistent/gleaner-marker-7f3e"), None).is_empty());
    }
}
