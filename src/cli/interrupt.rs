//! SIGINT/SIGTERM for the commands that write files or run long work: the
//! artifact files in progress are removed, one line says so, and the
//! process exits at once with 130 (SIGINT) or 143 (SIGTERM), as a shell
//! reports a process its signal ended.
//!
//! The default disposition would end the process just as fast but leave a
//! temporary `.NAME.partial-PID` beside the output. `rfc serve` keeps its
//! own handling (a graceful shutdown) and does not install this.

use std::sync::mpsc;

/// Starts the thread that waits for the signals; returns once they are
/// caught, so nothing written after this call can be left behind.
pub fn clean_up_on_signal() {
    let (ready_tx, ready_rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("rfc-signals".into())
        .spawn(move || wait_and_exit(ready_tx));
    if spawned.is_ok() {
        // An error means the thread could not install the handlers; the
        // default disposition (exit without cleanup) then stays.
        let _ = ready_rx.recv();
    }
}

fn wait_and_exit(ready: mpsc::Sender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    let code = rt.block_on(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return None;
        };
        let _ = ready.send(());
        tokio::select! {
            _ = int.recv() => Some(130),
            _ = term.recv() => Some(143),
        }
    });
    let Some(code) = code else { return };
    let removed = rocmforge::artifact::partial::remove_all();
    if removed > 0 {
        eprintln!("\ninterrupted: removed {removed} partial file(s)");
    } else {
        eprintln!("\ninterrupted");
    }
    std::process::exit(code);
}
