//! Logging. Under systemd (`JOURNAL_STREAM` or `INVOCATION_ID` set, or
//! `SITEBACKUP_LOG=journald`) events go to journald with their structured
//! fields (site, server, key, bytes, duration); otherwise to stderr.
//! `SITEBACKUP_LOG=stderr` forces stderr. `RUST_LOG` overrides the level
//! chosen with `-v`/`-q`. Stdout is reserved for command output.
//!
//! Commands print their results on stdout, so at the default verbosity
//! they log warnings and errors only; the long-running services (`daemon`,
//! `master serve`) log from INFO. Log lines on a terminal go through
//! [`bars`], so that they never print over a progress bar.

use indicatif::MultiProgress;
use std::io;
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn want_journald() -> bool {
    match std::env::var("SITEBACKUP_LOG").as_deref() {
        Ok("journald") => true,
        Ok("stderr") => false,
        _ => std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some(),
    }
}

/// The progress bars of this process. A bar shown on stderr must be added
/// here ([`MultiProgress::add`]), so that log lines suspend it.
pub fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// Stderr, with the progress bars cleared while a line is written.
struct BarAwareStderr;

impl io::Write for BarAwareStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        bars().suspend(|| io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        bars().suspend(|| io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// `service`: the daemon or the master's server, which log from INFO.
pub fn init(verbose: u8, quiet: bool, service: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) if service => "info",
        (false, 0) => "warn",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("sitebackup={default},warn")));
    if want_journald() {
        match tracing_journald::layer() {
            Ok(layer) => {
                let _ = tracing_subscriber::registry()
                    .with(filter)
                    .with(layer.with_syslog_identifier("sitebackup".into()))
                    .try_init();
                return;
            }
            Err(e) => eprintln!("warning: journald is not reachable ({e}); logging to stderr"),
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BarAwareStderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .try_init();
}
