//! One file per subcommand: thin glue over the library. Each returns the
//! process exit code; errors are printed here with their whole chain.

mod backup;
mod config_check;
mod list;
mod master;
mod node;
mod progress;
mod prune;
mod reconcile;
mod restore;
mod servers;
mod verify;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::config::{self, ConfigError, LoadOptions};
use crate::{EXIT_CONFIG, EXIT_FAILED};

/// Run a parsed command line; returns the exit code.
///
/// The dotenv file is loaded once, first; then each subcommand loads only
/// what it needs: `list` the state directory, the `master` commands their
/// `[master_server]` table, everything else the whole validated config.
pub async fn run(cli: Cli) -> u8 {
    let opts = LoadOptions {
        config_path: cli.config.clone(),
        env_file: cli.env_file.clone(),
    };
    if let Err(e) = config::load_env_file(opts.env_file.as_deref()) {
        return report_config_error(&e, cli.json);
    }
    let result = match &cli.command {
        Command::Config(ConfigCommand::Check { systemd_condition }) => {
            let loaded = config::load_without_env_file(&opts);
            if *systemd_condition {
                return config_check::condition(loaded, config::is_unconfigured(&opts));
            }
            return config_check::run(loaded, cli.json, cli.quiet);
        }
        Command::Master(command) => match config::load_master(&opts) {
            Ok(master_config) => master::run(&master_config, command, cli.json).await,
            Err(e) => return report_config_error(&e, cli.json),
        },
        Command::List(args) => match config::load_state_dir(&opts) {
            // The site names, when the whole config loads: a configured site
            // with no archive yet is not an unknown one.
            Ok(state_dir) => {
                let sites = config::load_without_env_file(&opts)
                    .ok()
                    .map(|c| c.sites.iter().map(|s| s.name.clone()).collect::<Vec<_>>());
                list::run(&state_dir, sites.as_deref(), args, cli.json)
            }
            Err(e) => return report_config_error(&e, cli.json),
        },
        _ => match config::load_without_env_file(&opts) {
            Ok(config) => dispatch(&cli, &opts, config).await,
            Err(e) => return report_config_error(&e, cli.json),
        },
    };
    finish(result, cli.json)
}

/// The commands that need the whole validated configuration.
async fn dispatch(cli: &Cli, opts: &LoadOptions, config: config::Config) -> anyhow::Result<u8> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // Progress bars: on a terminal, and not with --json or -q.
    let bar = !cli.json && !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    match &cli.command {
        Command::Servers => servers::run(&config, cli.json).await,
        Command::Backup(args) => backup::run(&config, args, cli.json, bar).await,
        Command::Prune(args) => prune::run(&config, args, cli.json).await,
        Command::Restore(args) => restore::run(&config, args, cli.json, bar).await,
        Command::Verify(args) => verify::run(&config, args, cli.json, bar).await,
        Command::Reconcile(args) => reconcile::run(&config, args, cli.json).await,
        Command::Daemon => crate::daemon::run(opts.clone(), config).await,
        Command::Node(crate::cli::NodeModeCommand::Status) => node::status(&config, cli.json).await,
        Command::List(_) | Command::Config(_) | Command::Master(_) => unreachable!("loaded and run by `run`"),
    }
}

/// A command line that asks for something that does not exist or makes
/// no sense (`prune --site nosuch`, `verify` with nothing to verify): not a
/// configuration problem. Printed as it is; exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

impl UsageError {
    /// `unknown site "nosuch"; configured: a, b`.
    pub(crate) fn unknown_site(name: &str, config: &config::Config) -> Self {
        let known: Vec<&str> = config.sites.iter().map(|s| s.name.as_str()).collect();
        UsageError(format!(
            "unknown site {name:?}; configured: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    }
}

fn finish(result: anyhow::Result<u8>, json: bool) -> u8 {
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigError>() {
                return report_config_error(ce, json);
            }
            if let Some(usage) = e.downcast_ref::<UsageError>() {
                if json {
                    print_json(&serde_json::json!({ "error": usage.0 }));
                }
                eprintln!("error: {usage}");
                return EXIT_CONFIG;
            }
            eprintln!("error: {e:#}");
            if json {
                print_json(&serde_json::json!({ "error": format!("{e:#}") }));
            }
            EXIT_FAILED
        }
    }
}

pub(crate) fn report_config_error(e: &ConfigError, json: bool) -> u8 {
    if json {
        print_json(&serde_json::json!({ "valid": false, "problems": e.problems() }));
    }
    eprintln!("error: {e}");
    EXIT_CONFIG
}

pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// Every command's `--json` document: pretty-printed, one per run, on
/// stdout.
pub(crate) fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => println!(
            "{}",
            serde_json::json!({ "error": format!("cannot render the result: {e}") })
        ),
    }
}
