//! Stopping on SIGINT or SIGTERM, for the long-running commands (`sandbox`,
//! `serve`, `daemon`).

use anyhow::{Context, Result};

/// Listens for SIGINT (Ctrl-C) or, on Unix, SIGTERM, from the moment it
/// is called: the handlers are in place before the command says it is
/// ready, so a signal sent right after that line cannot kill the process
/// the default way. The returned future ends at the first signal.
pub fn stop_signal() -> Result<impl std::future::Future<Output = Result<()>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => tracing::info!("SIGINT received"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
            }
            Ok(())
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            tokio::signal::ctrl_c()
                .await
                .context("cannot listen for Ctrl-C")
        })
    }
}
