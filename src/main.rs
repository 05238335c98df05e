use clap::Parser;
use sitebackup::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    sitebackup::telemetry::init(cli.verbose, cli.quiet, cli.command.is_service());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(sitebackup::EXIT_FAILED);
        }
    };
    let code = runtime.block_on(sitebackup::commands::run(cli));
    ExitCode::from(code)
}
