//! One file per subcommand: thin glue over the library. Each returns the
//! process exit code; errors are printed here with their whole chain.

mod backup;
mod config_check;
mod list;
mod prune;
mod reconcile;
mod restore;
mod servers;
mod verify;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::config::{self, ConfigError, LoadOptions};
use crate::{EXIT_CONFIG, EXIT_FAILED};

/// Run a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    let opts = LoadOptions {
        config_path: cli.config.clone(),
        env_file: cli.env_file.clone(),
    };
    let loaded = config::load(&opts);
    if let Command::Config(ConfigCommand::Check) = cli.command {
        return config_check::run(loaded, cli.json);
    }
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return report_config_error(&e, cli.json),
    };
    let result = match &cli.command {
        Command::Servers => servers::run(&config, cli.json).await,
        Command::List(args) => list::run(&config, args, cli.json),
        Command::Backup(args) => backup::run(&config, args, cli.json).await,
        Command::Prune(args) => prune::run(&config, args, cli.json).await,
        Command::Restore(args) => restore::run(&config, args, cli.json).await,
        Command::Verify(args) => verify::run(&config, args, cli.json).await,
        Command::Reconcile(args) => reconcile::run(&config, args, cli.json).await,
        Command::Config(_) => unreachable!("handled above"),
        Command::Daemon => crate::daemon::run(opts.clone(), config.clone()).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigError>() {
                return report_config_error(ce, cli.json);
            }
            tracing::error!("{e:#}");
            if cli.json {
                println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            }
            EXIT_FAILED
        }
    }
}

pub(crate) fn report_config_error(e: &ConfigError, json: bool) -> u8 {
    if json {
        println!("{}", serde_json::json!({ "valid": false, "problems": e.problems() }));
    }
    eprintln!("error: {e}");
    EXIT_CONFIG
}

pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}
