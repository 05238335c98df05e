//! Unix signals through signal-hook, for the daemon and the CLI alike.
//!
//! [`SignalStream`] installs handlers for the signals asked for and
//! delivers them, in order, through one stream (signal-hook-tokio). The
//! daemon installs SIGHUP, SIGTERM and SIGINT before anything else at
//! start-up; the CLI's long commands use [`cancel_on_interrupt`] so Ctrl-C
//! stops them cleanly. Once a handler is installed the signal no longer
//! kills the process: the owner of the stream decides what it means. This
//! module only delivers signals; it must not act on them.

use futures::StreamExt;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::{Handle, Signals};
use tokio_util::sync::CancellationToken;

/// The signals this crate handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: reload the configuration.
    Hangup,
    /// SIGTERM: stop (systemd's stop).
    Terminate,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

impl Signal {
    fn number(self) -> i32 {
        match self {
            Signal::Hangup => SIGHUP,
            Signal::Terminate => SIGTERM,
            Signal::Interrupt => SIGINT,
        }
    }

    fn from_number(n: i32) -> Option<Signal> {
        [Signal::Hangup, Signal::Terminate, Signal::Interrupt]
            .into_iter()
            .find(|s| s.number() == n)
    }

    /// The usual name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hangup => "SIGHUP",
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        }
    }
}

/// The signals asked for, delivered in order. Dropping it closes the stream
/// (the handlers stay installed, so the signals stay caught).
pub struct SignalStream {
    signals: Signals,
    handle: Handle,
}

impl SignalStream {
    /// Install handlers for `wanted`. Call it inside a Tokio runtime.
    pub fn install(wanted: &[Signal]) -> std::io::Result<SignalStream> {
        let signals = Signals::new(wanted.iter().map(|s| s.number()))?;
        let handle = signals.handle();
        Ok(SignalStream { signals, handle })
    }

    /// The next signal; `None` once the stream is closed.
    pub async fn recv(&mut self) -> Option<Signal> {
        loop {
            let n = self.signals.next().await?;
            if let Some(s) = Signal::from_number(n) {
                return Some(s);
            }
        }
    }
}

impl Drop for SignalStream {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// A token cancelled by the first Ctrl-C (SIGINT), which is logged with
/// `message`. If the handler cannot be installed, Ctrl-C keeps its default
/// action (ending the process) and the token is never cancelled.
pub fn cancel_on_interrupt(message: &'static str) -> CancellationToken {
    let cancel = CancellationToken::new();
    match SignalStream::install(&[Signal::Interrupt]) {
        Ok(mut stream) => {
            let interrupt = cancel.clone();
            tokio::spawn(async move {
                if stream.recv().await.is_some() {
                    tracing::warn!("{message}");
                    interrupt.cancel();
                }
            });
        }
        Err(e) => tracing::warn!("Could not install the Ctrl-C handler: {e}"),
    }
    cancel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for s in [Signal::Hangup, Signal::Terminate, Signal::Interrupt] {
            assert_eq!(Signal::from_number(s.number()), Some(s));
        }
        assert_eq!(Signal::from_number(signal_hook::consts::signal::SIGUSR1), None);
        assert_eq!(Signal::Terminate.name(), "SIGTERM");
    }
}
