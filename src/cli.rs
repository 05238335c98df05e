//! Command-line types (clap). No logic here.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sitebackup",
    version,
    about = "Streamed, failover-aware backups of web sites to S3-compatible storage",
    after_help = after_help()
)]
pub struct Cli {
    /// TOML configuration file [default: $SITEBACKUP_CONFIG, else /etc/sitebackup/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// dotenv file with SITEBACKUP_* and S3_SERVER_* variables [default: /etc/sitebackup/sitebackup.env if present]; never ./.env
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// One JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only warnings and errors in the log
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The exit statuses, for `--help`, the man page and the README.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (0, "Success."),
    (
        1,
        "A job failed: a site's backup (the other sites still ran), a restore, a verify, a prune, a server check.",
    ),
    (
        2,
        "Usage or configuration error: nothing was done; the message names the argument, key or environment variable.",
    ),
    (
        3,
        "backup: every site was stored, but some with warnings (files that could not be read or changed while read, a suspect archive).",
    ),
];

/// Command lines an operator starts from, for `--help` and the man page.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "sitebackup config check",
        "Validate the configuration and show where each setting came from.",
    ),
    (
        "sitebackup servers",
        "Test every storage server: reachable, credentials, bucket, usage.",
    ),
    ("sitebackup backup --all", "Back up every configured site now."),
    ("sitebackup list --site blog", "The archives of one site, newest first."),
    (
        "sitebackup verify --all",
        "Download every archive and check its checksum and contents.",
    ),
    (
        "sitebackup restore 42 --to /srv/restore/blog",
        "Restore archive 42 (an id from `list`) into a new directory.",
    ),
    (
        "sitebackup prune --dry-run",
        "What retention would delete, without deleting.",
    ),
];

/// EXAMPLES and EXIT STATUS, after the options in `--help`.
fn after_help() -> String {
    let mut out = String::from("Examples:\n");
    for (command, what) in EXAMPLES {
        out.push_str(&format!("  {command}\n      {what}\n"));
    }
    out.push_str("\nExit status:\n");
    for (code, what) in EXIT_CODES {
        out.push_str(&format!("  {code}  {what}\n"));
    }
    out
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the scheduler until SIGTERM (systemd ExecStart)
    Daemon,
    /// Back up now; exit 1 if any site failed, 3 if all were stored but some with warnings
    Backup(BackupArgs),
    /// Archives in the catalog
    List(ListArgs),
    /// Fetch an archive, verify its checksum, extract it safely
    Restore(RestoreArgs),
    /// Download archives and check checksum and readability
    Verify(VerifyArgs),
    /// Apply retention
    Prune(PruneArgs),
    /// Compare the catalog with bucket listings
    Reconcile(ReconcileArgs),
    /// Connectivity and usage of every configured server
    Servers,
    /// Configuration commands
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Node mode: this host as a node of a master
    #[command(subcommand)]
    Node(NodeModeCommand),
    /// The central master: providers, node credentials, usage (reads only [master_server])
    #[command(subcommand)]
    Master(MasterCommand),
}

impl Command {
    /// A long-running service (logs from INFO by default).
    pub fn is_service(&self) -> bool {
        matches!(self, Command::Daemon | Command::Master(MasterCommand::Serve))
    }
}

#[derive(Debug, Subcommand)]
pub enum NodeModeCommand {
    /// Master reachability, node and site uuids, quotas and usage, the outbox and the last sync
    Status,
}

#[derive(Debug, Subcommand)]
pub enum MasterCommand {
    /// Create the database and the Fernet key file; print the first super-admin token once
    Init,
    /// Run the API until SIGTERM (systemd Type=notify)
    Serve,
    /// Super-admin tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Nodes and their tokens
    #[command(subcommand)]
    Node(NodeCommand),
    /// Re-encrypt every provider key under a new key (safe while serve runs)
    RotateKey,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a super-admin token; printed once
    Create {
        /// A note to tell tokens apart in `token list`
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Every token (never the token itself)
    List,
    /// Revoke a token by its id (from `token list`)
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Register a node; prints its node_uuid and token once
    Add {
        name: String,
        /// Storage quota of the node, in GB (10^9 bytes)
        #[arg(long, value_name = "GB")]
        quota_gb: Option<f64>,
    },
    /// Every node with its usage and last contact
    List,
    /// Remove a node (by name or uuid), its sites and tokens
    Remove {
        node: String,
        /// Also when archives are recorded for it (the records go, the objects stay)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted (with -q: only problems)
    Check {
        /// For the unit's ExecCondition=: exit 1 (systemd skips the unit, not a failure) when nothing
        /// is configured yet, 255 (the unit fails) when the configuration is invalid, 0 when it is valid
        #[arg(long)]
        systemd_condition: bool,
    },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Sites to back up (names from the config)
    pub sites: Vec<String>,
    /// Back up every configured site
    #[arg(long, conflicts_with = "sites")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only archives of this site
    #[arg(long)]
    pub site: Option<String>,
    /// Only archives on server N
    #[arg(long, value_name = "N")]
    pub server: Option<u32>,
    /// Also show failed, deleted and missing archives
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Catalog id or object key
    pub archive: String,
    /// Directory to restore into (manifest.json, files/, database/): new or empty
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub to: PathBuf,
    /// Also import the dump (database/NAME.sql) with the mariadb/mysql client; needs --db-name or --overwrite-live-db
    #[arg(long)]
    pub with_db: bool,
    /// Import into this new database (created if missing; an existing one must be empty)
    #[arg(
        long,
        requires = "with_db",
        value_name = "NAME",
        conflicts_with = "overwrite_live_db"
    )]
    pub db_name: Option<String>,
    /// Import into the live database of the archive's site as configured on this host, replacing its tables
    #[arg(long, requires = "with_db")]
    pub overwrite_live_db: bool,
    /// The site the archive belongs to, when restoring by key with no catalog row (a fresh host)
    #[arg(long, requires = "with_db", value_name = "SITE")]
    pub site: Option<String>,
    /// On failure keep the partial, untrusted tree in DIR/UNTRUSTED-partial-restore instead of removing it
    #[arg(long)]
    pub keep_partial: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Catalog ids or object keys
    pub archives: Vec<String>,
    /// Verify every complete archive in the catalog
    #[arg(long, conflicts_with = "archives")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only this site
    #[arg(long)]
    pub site: Option<String>,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Take this host's prefix over from the installation that owns it (a
    /// rebuilt host with an empty state directory), then import every archive under it
    #[arg(long)]
    pub adopt: bool,
}
