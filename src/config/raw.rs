//! Serde mirror of the TOML file. Nothing here is validated; see `super::load`.

use super::Secret;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub host_id: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub timezone: Option<String>,
    #[serde(default)]
    pub upload: RawUpload,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub network: RawNetwork,
    #[serde(default)]
    pub restore: RawRestore,
    #[serde(default)]
    pub servers: Vec<RawServer>,
    #[serde(default)]
    pub sites: Vec<RawSite>,
    /// `sitebackup master`'s settings; only the `master` commands read it.
    pub master_server: Option<super::master::RawMasterServer>,
    /// `standalone` (default) or `node`.
    pub mode: Option<String>,
    /// The master a node gets its credentials from.
    pub master: Option<super::node::RawMaster>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpload {
    pub part_size_mb: Option<u64>,
    pub concurrency: Option<usize>,
    pub queue_depth: Option<usize>,
    pub zstd_level: Option<i32>,
    pub zstd_threads: Option<u32>,
    pub part_retries: Option<u32>,
    pub size_margin_percent: Option<u64>,
    pub suspect_below_percent: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub drain_timeout_secs: Option<u64>,
    pub catch_up: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub idle_timeout_secs: Option<u64>,
}

/// `[restore]`: what an archive may make `restore` and `verify` do.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestore {
    pub max_entries: Option<u64>,
    pub max_size_gb: Option<f64>,
    pub keep_free_mb: Option<u64>,
}

/// One storage server. The same fields as `S3_SERVER_N_*`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub access_key: Option<Secret>,
    pub access_key_file: Option<PathBuf>,
    pub secret_key: Option<Secret>,
    pub secret_key_file: Option<PathBuf>,
    /// Temporary credentials (STS): sent as `x-amz-security-token`.
    pub session_token: Option<Secret>,
    pub session_token_file: Option<PathBuf>,
    pub storage_limit_gb: Option<f64>,
    pub path_style: Option<bool>,
    /// Directory of a `type = "local"` server.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: Option<String>,
    pub path: Option<PathBuf>,
    pub schedule: Option<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A file of more `exclude` rules, one per line (.gitignore syntax).
    pub exclude_file: Option<PathBuf>,
    pub database: Option<RawDatabase>,
    pub retention: Option<RawRetention>,
    pub hooks: Option<RawHooks>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub enabled: Option<bool>,
    pub name: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    /// Longest a dump may run before it is killed.
    pub timeout_secs: Option<u64>,
}

/// `[sites.hooks]`: shell commands around a backup. A command may hold a
/// token, so each is a [`Secret`].
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    #[serde(default)]
    pub before: Vec<Secret>,
    #[serde(default)]
    pub after: Vec<Secret>,
    #[serde(default)]
    pub on_error: Vec<Secret>,
    pub timeout_secs: Option<u64>,
    pub before_optional: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<String>,
}
