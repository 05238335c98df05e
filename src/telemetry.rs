//! Logging. Under systemd (`JOURNAL_STREAM` or `INVOCATION_ID` set, or
//! `SITEBACKUP_LOG=journald`) events go to journald with their structured
//! fields (site, server, key, bytes, duration); otherwise to stderr.
//! `SITEBACKUP_LOG=stderr` forces stderr. `RUST_LOG` overrides the level
//! chosen with `-v`/`-q`. Stdout is reserved for command output.

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

pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
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
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .try_init();
}
