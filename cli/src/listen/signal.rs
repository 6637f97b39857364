//! Ctrl-C and SIGTERM: the first stops gracefully, a second exits at once.

use tokio_util::sync::CancellationToken;

use crate::exit::ExitCode;
use crate::ui::Ui;

/// Watches for signals in the background. The first cancels `stop`; the
/// second ends the process with exit code 130.
pub fn spawn(stop: CancellationToken, ui: Ui) {
    tokio::spawn(async move {
        if !next_signal().await {
            return;
        }
        ui.status("Stopping: finishing events in flight (Ctrl-C again to quit at once)...");
        stop.cancel();
        if !next_signal().await {
            return;
        }
        ui.always("Stopped at once; events not yet answered will be delivered again.");
        std::process::exit(ExitCode::Interrupted as i32);
    });
}

/// Waits for SIGINT or SIGTERM; false if no signal can be watched.
async fn next_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                result = tokio::signal::ctrl_c() => result.is_ok(),
                _ = term.recv() => true,
            };
        }
    }
    tokio::signal::ctrl_c().await.is_ok()
}
