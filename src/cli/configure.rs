//! Clap types of `configure`: the set-up wizard and its scriptable twin.
//! Secrets are never command-line values: only files, or `-` for stdin.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Without a subcommand (on a terminal): the interactive wizard. Secrets go to the env file \
                  (--env-file, default /etc/sitebackup/sitebackup.env, mode 0600), everything else to the TOML \
                  file (--config); comments and unknown lines are kept, the whole configuration is validated \
                  before anything is written, and each file's previous version is kept as FILE.bak."
)]
pub struct ConfigureArgs {
    #[command(subcommand)]
    pub command: Option<ConfigureCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigureCommand {
    /// Storage servers: list, add, edit, remove, reorder (each new or edited one is tested live)
    #[command(subcommand)]
    S3(S3Command),
    /// Sites to back up
    #[command(subcommand)]
    Site(SiteCommand),
    /// Node mode: this host gets its storage from a master
    #[command(subcommand)]
    Node(NodeSetupCommand),
}

#[derive(Debug, Subcommand)]
pub enum S3Command {
    /// The configured servers, in the order they are tried
    List,
    /// Add a server (tested live before it is saved)
    Add(S3AddArgs),
    /// Change a server's settings or keys (tested live before it is saved)
    Edit(S3EditArgs),
    /// Remove server N from the TOML file and the env file
    Remove {
        /// The server's number (N of S3_SERVER_N_*)
        id: u32,
    },
    /// Renumber server N: to a free number, or to the place of another server (the others shift)
    Move {
        /// The server's number
        id: u32,
        /// Its new number (1 is tried first)
        #[arg(long, value_name = "N")]
        to: u32,
    },
}

/// A provider preset: fills the endpoint from the region where it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// iDrive E2 (endpoint and region from the E2 console)
    #[value(name = "idrive-e2")]
    IdriveE2,
    /// AWS S3 (s3.REGION.amazonaws.com)
    Aws,
    /// Backblaze B2 (s3.REGION.backblazeb2.com)
    #[value(name = "b2")]
    Backblaze,
    /// DigitalOcean Spaces (REGION.digitaloceanspaces.com)
    #[value(name = "digitalocean")]
    DigitalOcean,
    /// Wasabi (s3.REGION.wasabisys.com)
    Wasabi,
    /// MinIO (give --endpoint; region us-east-1 unless set)
    Minio,
    /// Any other S3-compatible server (give --endpoint)
    Other,
}

/// The live test of a new or changed server.
#[derive(Debug, Args, Clone, Copy)]
pub struct TestArgs {
    /// Do not test the server (or the master) before saving
    #[arg(long, conflicts_with = "save_anyway")]
    pub no_test: bool,
    /// Save even when the live test fails (the failure is still reported)
    #[arg(long)]
    pub save_anyway: bool,
}

#[derive(Debug, Args)]
pub struct S3AddArgs {
    /// Provider preset (fills the endpoint from the region where it can)
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,
    /// Host name without https:// (or http://host:port for a local server)
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Region code, e.g. eu-west-3 (the preset's default when omitted)
    #[arg(long)]
    pub region: Option<String>,
    /// The bucket (it must exist)
    #[arg(long)]
    pub bucket: String,
    /// Largest amount this host may store there, in GB (10^9 bytes) [default: 100]
    #[arg(long, value_name = "GB")]
    pub storage_limit_gb: Option<f64>,
    /// Path-style addressing [default: true except on AWS]
    #[arg(long, value_name = "BOOL")]
    pub path_style: Option<bool>,
    /// File holding the access key id, or - for stdin (first line)
    #[arg(long, value_name = "PATH|-")]
    pub access_key_file: PathBuf,
    /// File holding the secret key, or - for stdin (next line)
    #[arg(long, value_name = "PATH|-")]
    pub secret_key_file: PathBuf,
    /// The server's number [default: one more than the highest]
    #[arg(long, value_name = "N")]
    pub id: Option<u32>,
    #[command(flatten)]
    pub test: TestArgs,
}

#[derive(Debug, Args)]
pub struct S3EditArgs {
    /// The server's number
    pub id: u32,
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub bucket: Option<String>,
    #[arg(long, value_name = "GB")]
    pub storage_limit_gb: Option<f64>,
    #[arg(long, value_name = "BOOL")]
    pub path_style: Option<bool>,
    /// New access key id from a file, or - for stdin
    #[arg(long, value_name = "PATH|-")]
    pub access_key_file: Option<PathBuf>,
    /// New secret key from a file, or - for stdin
    #[arg(long, value_name = "PATH|-")]
    pub secret_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub test: TestArgs,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// The configured sites
    List,
    /// Add a site by its directory (a wp-config.php there gives the database)
    Add(SiteAddArgs),
    /// Remove a site from the TOML file (its archives stay)
    Remove {
        /// The site's name
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct SiteAddArgs {
    /// The site's directory (absolute)
    #[arg(long, value_hint = clap::ValueHint::DirPath)]
    pub path: PathBuf,
    /// Name used in object keys [default: the directory's name]
    #[arg(long)]
    pub name: Option<String>,
    /// A preset (hourly, every-6-hours, twice-daily, daily, weekly) or a cron line of 5 or 6 fields [default: daily]
    #[arg(long)]
    pub schedule: Option<String>,
    /// Retention preset: standard, minimal, long or keep-all [default: standard]
    #[arg(long)]
    pub retention: Option<String>,
    /// Do not dump a database even if wp-config.php names one
    #[arg(long)]
    pub no_database: bool,
    /// Paths to leave out (globs relative to the site), repeatable
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum NodeSetupCommand {
    /// The mode and the [master] settings
    Show,
    /// Make this host a node of a master (the connection is tested before saving)
    Set(NodeSetArgs),
    /// Back to standalone mode (the [master] table stays, unused)
    Disable,
}

#[derive(Debug, Args)]
pub struct NodeSetArgs {
    /// The master's URL, e.g. https://master.example:8700
    #[arg(long)]
    pub url: String,
    /// This node's uuid, as `sitebackup master node add` printed it
    #[arg(long)]
    pub node_uuid: String,
    /// File holding the node's token, or - for stdin
    #[arg(long, value_name = "PATH|-")]
    pub token_file: PathBuf,
    /// Where the token is kept (mode 0600) [default: node.token beside the TOML file]
    #[arg(long, value_name = "PATH")]
    pub save_token_to: Option<PathBuf>,
    /// A PEM CA bundle to trust for the master
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub test: TestArgs,
}
