//! SIGTERM and SIGINT: the first drains like the console's `shutdown`, a
//! second exits at once.

use std::time::Duration;

use super::{Console, ServeError, spawn_thread};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Closes the signal thread when dropped or [`close`](SignalGuard::close)d.
pub(super) struct SignalGuard(signal_hook::iterator::Handle);

impl SignalGuard {
    /// Stops waiting for signals.
    pub(super) fn close(self) {
        self.0.close();
    }
}

/// Starts the thread that waits for SIGTERM and SIGINT. From now on they
/// no longer kill the process outright.
pub(super) fn spawn(console: Console, grace: Duration) -> Result<SignalGuard, ServeError> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(ServeError::Signals)?;
    let guard = SignalGuard(signals.handle());
    spawn_thread("signals", move || {
        let mut draining = false;
        for signal in signals.forever() {
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            if draining {
                tracing::warn!("{name} again: exiting now, without waiting for the drain");
                std::process::exit(128 + signal);
            }
            draining = true;
            tracing::info!(
                grace = %humantime::format_duration(grace),
                "{name}: shutting down gracefully; send it again to exit at once"
            );
            if let Err(e) = console.shutdown(grace) {
                tracing::warn!("{name}: {e}");
            }
        }
    })?;
    Ok(guard)
}
