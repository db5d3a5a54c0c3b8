//! The konnector's `node` process: started as cozy-stack starts it, its
//! output read as cozy-stack reads it, and ended with its whole process
//! group on every path.
//!
//! The environment is exactly cozy-stack's (`COZY_*`), plus `PATH` and the
//! proxy variables; nothing else of Gleaner's environment reaches the
//! konnector. It runs in a scratch working directory, in a process group of
//! its own, so that [`NodeProcess`]'s drop can kill everything it started
//! (a hung run at its time limit, a run whose future is dropped).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use gleaner_framework::{ErrorCode, KonnectorError};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// The longest output line kept, in bytes (longer ones are cut).
pub const MAX_LINE: usize = 64 * 1024;

/// The `node` binary: `GLEANER_NODE`, else `node` on `PATH`.
pub fn node_binary() -> PathBuf {
    std::env::var_os("GLEANER_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"))
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `node` binary.
    pub node: PathBuf,
    /// The konnector's script (`index.js` of the installed build).
    pub script: PathBuf,
    /// The scratch working directory.
    pub workdir: PathBuf,
    /// The environment, besides `PATH` (set from Gleaner's own).
    pub env: Vec<(String, String)>,
}

/// One line the konnector printed on stdout, as cozy-stack reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogLine {
    /// `debug`, `info`, `warning` (or `warn`), `error`, `critical`.
    #[serde(rename = "type", default)]
    pub level: String,
    /// The message.
    #[serde(default, deserialize_with = "text")]
    pub message: String,
    /// Set by the konnector when its error must not be retried.
    #[serde(default)]
    pub no_retry: bool,
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// What the process printed or did.
#[derive(Debug)]
pub enum Output {
    /// A JSON line on stdout.
    Log(LogLine),
    /// A stdout line that is not a log line.
    Text(String),
    /// A line on stderr.
    Stderr(String),
}

/// A running konnector process.
pub struct NodeProcess {
    child: tokio::process::Child,
    pid: Option<u32>,
    output: Option<mpsc::Receiver<Output>>,
}

impl NodeProcess {
    /// Starts `node <script>`. A missing `node` is
    /// `UNKNOWN_ERROR.NODE_MISSING`.
    pub fn start(launch: &Launch) -> Result<Self, KonnectorError> {
        let mut cmd = tokio::process::Command::new(&launch.node);
        cmd.arg(&launch.script)
            .current_dir(&launch.workdir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                KonnectorError::new(
                    ErrorCode::NodeMissing,
                    format!(
                        "cannot start `{}`: Node.js is not installed (apt-get install -y nodejs, or set GLEANER_NODE)",
                        launch.node.display()
                    ),
                )
            } else {
                KonnectorError::new(
                    ErrorCode::UnknownError,
                    format!("cannot start `{}`: {e}", launch.node.display()),
                )
            }
        })?;
        let pid = child.id();
        let (tx, output) = mpsc::channel(256);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_lines(stdout, tx.clone(), false));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(read_lines(stderr, tx, true));
        }
        tracing::debug!(pid, script = %launch.script.display(), "konnector process started");
        Ok(Self {
            child,
            pid,
            output: Some(output),
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The output, one [`Output`] per line, until both streams close
    /// (taken once: the receiver lives apart from the process, so that a
    /// caller can read it while waiting for the exit).
    pub fn take_output(&mut self) -> Option<mpsc::Receiver<Output>> {
        self.output.take()
    }

    /// Waits for the exit, after the output is read.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await;
        // The konnector may have left children behind in its group.
        self.kill_group();
        status
    }

    /// Kills the whole process group (SIGKILL). Safe to call twice.
    pub fn kill_group(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self
            .pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // ESRCH once the group is gone: nothing to do.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill_group();
    }
}

async fn read_lines<R: AsyncRead + Unpin>(stream: R, tx: mpsc::Sender<Output>, stderr: bool) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_capped_line(&mut reader, &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            continue;
        }
        let out = if stderr {
            Output::Stderr(line.to_owned())
        } else {
            match serde_json::from_str::<LogLine>(line) {
                Ok(log) if !log.level.is_empty() => Output::Log(log),
                _ => Output::Text(line.to_owned()),
            }
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}

/// Reads one line, keeping at most [`MAX_LINE`] bytes of it (the rest is
/// read and dropped). Returns the bytes read.
async fn read_capped_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        total += n;
        if done {
            return Ok(total);
        }
    }
}

/// The job's error from what the konnector printed, as cozy-stack decides
/// it: the last `critical` message, else the last `error`, else the exit
/// status. `None`: the run succeeded.
pub fn outcome(
    last_critical: Option<&LogLine>,
    last_error: Option<&LogLine>,
    status: Option<ExitStatus>,
) -> Option<KonnectorError> {
    if let Some(line) = last_critical.or(last_error) {
        return Some(error_of(line));
    }
    match status {
        Some(s) if s.success() => None,
        Some(s) => Some(KonnectorError::new(
            ErrorCode::UnknownError,
            match s.code() {
                Some(code) => format!(
                    "the konnector exited with status {code} without saying why (no error message on its output)"
                ),
                None => "the konnector was killed by a signal without saying why".to_owned(),
            },
        )),
        None => Some(KonnectorError::new(
            ErrorCode::UnknownError,
            "the konnector's exit status could not be read",
        )),
    }
}

/// A konnector's error message as a Gleaner error: a Cozy code
/// (`LOGIN_FAILED`, `USER_ACTION_NEEDED.TWOFA_EXPIRED`, `VENDOR_DOWN`...)
/// keeps its code, an unknown sub-code keeps its family
/// (`VENDOR_DOWN.BANK_DOWN` is `VENDOR_DOWN`), anything else is
/// `UNKNOWN_ERROR` quoting the message.
pub fn error_of(line: &LogLine) -> KonnectorError {
    let message = line.message.trim();
    let token = message.split_whitespace().next().unwrap_or_default();
    let code = ErrorCode::parse(token).or_else(|| {
        token
            .split_once('.')
            .and_then(|(family, _)| ErrorCode::parse(family))
    });
    let (code, text) = match code {
        Some(code) if code.is_retryable() && line.no_retry => (
            ErrorCode::UnknownError,
            format!("the konnector failed with {message} and asked not to be retried"),
        ),
        Some(code) => (code, format!("the konnector failed with {message}")),
        None if message.is_empty() => (
            ErrorCode::UnknownError,
            "the konnector reported an error with no message".to_owned(),
        ),
        None => (
            ErrorCode::UnknownError,
            format!("the konnector failed: {message}"),
        ),
    };
    KonnectorError::new(code, text)
}

/// A scratch working directory for one run, removed on drop.
pub fn scratch_dir(parent: &Path) -> std::io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(parent)?;
    tempfile::Builder::new().prefix("run-").tempdir_in(parent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(level: &str, message: &str, no_retry: bool) -> LogLine {
        LogLine {
            level: level.into(),
            message: message.into(),
            no_retry,
        }
    }

    #[test]
    fn the_last_critical_wins_then_the_last_error_then_the_status() {
        let c = line("critical", "LOGIN_FAILED", false);
        let e = line("error", "VENDOR_DOWN", false);
        assert_eq!(
            outcome(Some(&c), Some(&e), None).unwrap().code,
            ErrorCode::LoginFailed
        );
        assert_eq!(
            outcome(None, Some(&e), None).unwrap().code,
            ErrorCode::VendorDown
        );
        use std::os::unix::process::ExitStatusExt;
        assert!(outcome(None, None, Some(ExitStatus::from_raw(0))).is_none());
        let crash = outcome(None, None, Some(ExitStatus::from_raw(1 << 8))).unwrap();
        assert_eq!(crash.code, ErrorCode::UnknownError);
        assert!(crash.message.contains("status 1"), "{}", crash.message);
    }

    #[test]
    fn codes_are_mapped_with_their_family() {
        let code = |m: &str| error_of(&line("critical", m, false)).code;
        assert_eq!(
            code("USER_ACTION_NEEDED.TWOFA_EXPIRED"),
            ErrorCode::UserActionNeededTwofaExpired
        );
        assert_eq!(code("VENDOR_DOWN.BANK_DOWN"), ErrorCode::VendorDown);
        assert_eq!(code("LOGIN_FAILED.SOMETHING_NEW"), ErrorCode::LoginFailed);
        assert_eq!(code("TypeError: x is undefined"), ErrorCode::UnknownError);
        let no_retry = error_of(&line("critical", "VENDOR_DOWN", true));
        assert_eq!(no_retry.code, ErrorCode::UnknownError);
    }

    #[test]
    fn log_lines_parse_like_cozy_stack_reads_them() {
        let l: LogLine = serde_json::from_str(
            r#"{"type":"critical","message":"LOGIN_FAILED","no_retry":true,"time":"x"}"#,
        )
        .unwrap();
        assert_eq!(l, line("critical", "LOGIN_FAILED", true));
        let l: LogLine = serde_json::from_str(r#"{"type":"info","message":{"a":1}}"#).unwrap();
        assert_eq!(l.message, r#"{"a":1}"#);
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let data = format!("{}\nnext\n", "x".repeat(MAX_LINE * 2));
        let mut reader = BufReader::new(data.as_bytes());
        let mut buf = Vec::new();
        let n = read_capped_line(&mut reader, &mut buf).await.unwrap();
        assert_eq!(n, MAX_LINE * 2 + 1);
        assert_eq!(buf.len(), MAX_LINE);
        buf.clear();
        read_capped_line(&mut reader, &mut buf).await.unwrap();
        assert_eq!(buf, b"next\n");
    }
}
