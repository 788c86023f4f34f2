//! SIGINT and SIGTERM as a future.

/// Completes at the next SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                return;
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot listen for SIGTERM/SIGINT ({e}); Ctrl-C only");
            }
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal can be received: never complete.
        std::future::pending::<()>().await;
    }
}
