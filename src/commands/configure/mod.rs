//! `configure`: set up storage servers, sites and node mode, either with an
//! interactive wizard ([`wizard`], on a terminal) or with scriptable
//! subcommands ([`script`]). Both edit a [`files::Draft`] through the same
//! functions ([`servers`], [`sites`], [`node`]), test new servers and the
//! master live before keeping them ([`check`]), and save the same way:
//! the whole configuration validated as `config check` does, then each
//! changed file replaced atomically with a `.bak` of the old one.
//!
//! Secrets (storage keys, the node token) are read from hidden prompts,
//! files or stdin, never from the command line; they are written to the
//! env file or the token file (`0600`) and never printed or logged.
//!
//! Runs before the env file is loaded (it may not exist yet, or be the
//! thing being repaired), so it reads only what it edits.

mod check;
mod doc;
mod envdoc;
mod files;
mod node;
mod presets;
mod script;
mod servers;
mod sites;
mod wizard;
mod wizard_s3;
mod wizard_sites;

use crate::cli::{Cli, ConfigureArgs};
use files::{Paths, SaveReport};
use std::io::IsTerminal;

/// What bare `configure` says when there is no terminal to talk to.
const NON_INTERACTIVE_HELP: &str = "\
error: `sitebackup configure` is an interactive wizard and needs a terminal (stdin and stderr).
For scripts, use its subcommands; secrets come from files or stdin (-), never from the command line:

  sitebackup configure s3 list
  sitebackup configure s3 add --endpoint HOST --region REGION --bucket BUCKET \\
      --access-key-file FILE --secret-key-file FILE [--provider aws|b2|wasabi|…] [--storage-limit-gb GB]
  sitebackup configure s3 edit N [--bucket …] [--secret-key-file FILE] …
  sitebackup configure s3 remove N
  sitebackup configure s3 move N --to M
  sitebackup configure site add --path DIR [--name NAME] [--schedule daily|CRON] [--retention standard]
  sitebackup configure site remove NAME
  sitebackup configure node set --url URL --node-uuid UUID --token-file FILE
  sitebackup configure node disable

New and changed servers (and the master) are tested live before anything is saved.
See `sitebackup configure --help` and `sitebackup configure s3 add --help`.";

pub async fn run(cli: &Cli, args: &ConfigureArgs) -> anyhow::Result<u8> {
    let paths = Paths::from_cli(cli);
    match &args.command {
        Some(command) => script::run(paths, command, cli.json).await,
        None => {
            if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
                eprintln!("{NON_INTERACTIVE_HELP}");
                return Ok(crate::EXIT_CONFIG);
            }
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || wizard::run(paths, handle)).await?
        }
    }
}

/// `reload` when only the TOML file changed, `restart` when the env file
/// or the token did (the daemon reads those at start only).
fn apply_verb(report: &SaveReport) -> Option<&'static str> {
    if report.restart_needed {
        Some("restart")
    } else if report.toml_changed {
        Some("reload")
    } else {
        None
    }
}

/// Is the daemon running? Its instance lock in the state directory says
/// so for any daemon on this configuration; systemd for the unit.
fn daemon_running(report: &SaveReport) -> bool {
    crate::lock::DaemonLock::is_held(&report.state_dir)
        || std::process::Command::new("systemctl")
            .args(["is-active", "--quiet", "sitebackup"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// `Saved FILE (previous version: FILE.bak)` lines.
fn saved_lines(report: &SaveReport) -> Vec<String> {
    report
        .written
        .iter()
        .map(|(path, backup)| match backup {
            Some(b) => format!("Saved {} (previous version: {})", path.display(), b.display()),
            None => format!("Saved {} (new file)", path.display()),
        })
        .collect()
}
