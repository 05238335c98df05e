//! The validated configuration: what the rest of the program reads.

use super::{DatabaseConfig, Endpoint, Mode, NodeConfig, RetentionPolicy, Secret};
use crate::archive::ExcludeRules;
use crate::layout::{LOCAL_ENDPOINT, ServerRef};
use crate::schedule::Schedule;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// Default location of the TOML file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/sitebackup/config.toml";
/// Default state directory (the catalog and lock files live here).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sitebackup";
/// Default cron schedule for a site without one: daily at 03:00 (in `timezone`).
pub const DEFAULT_SCHEDULE: &str = "0 0 3 * * *";
/// Default storage limit of a server, in GB (10^9 bytes).
pub const DEFAULT_STORAGE_LIMIT_GB: f64 = 100.0;
/// Default time limit of one hook command.
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 300;
/// Longest allowed drain on SIGTERM (one day).
pub const MAX_DRAIN_TIMEOUT_SECS: u64 = 86_400;
/// Longest allowed hook time limit (one day).
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 86_400;
/// Default idle timeout of a storage request: seconds without a byte.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Longest allowed idle timeout (one hour).
pub const MAX_IDLE_TIMEOUT_SECS: u64 = 3_600;

pub(super) const MIB: u64 = 1024 * 1024;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host_id: String,
    pub state_dir: PathBuf,
    /// Time zone of the cron schedules (default UTC).
    pub timezone: chrono_tz::Tz,
    pub upload: UploadConfig,
    pub daemon: DaemonConfig,
    pub network: NetworkConfig,
    pub restore: RestoreConfig,
    /// Ordered by id: this is the order in which servers are tried.
    pub servers: Vec<ServerConfig>,
    pub sites: Vec<SiteConfig>,
    /// The TOML file the config came from, if any.
    pub source: Option<PathBuf>,
    /// Standalone, or a node of a master.
    pub mode: Mode,
    /// What loading noticed without failing (logged by the caller).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UploadConfig {
    /// Bytes per multipart part (grown per archive so that no upload needs
    /// more than 10,000 parts).
    pub part_size: u64,
    /// Parts uploaded at once.
    pub concurrency: usize,
    /// Parts buffered between the archiver and the uploader.
    pub queue_depth: usize,
    pub zstd_level: i32,
    /// zstd worker threads; 0 means single-threaded.
    pub zstd_threads: u32,
    /// Retries of a part after a transient error, on the same server.
    pub part_retries: u32,
    /// Margin added to the last archive size when estimating the next one.
    pub size_margin_percent: u64,
    /// An archive smaller than this percentage of the site's previous
    /// complete one is marked suspect (0 turns the check off).
    pub suspect_below_percent: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        Self {
            part_size: 5 * MIB,
            concurrency: 2,
            queue_depth: 2,
            zstd_level: 3,
            zstd_threads: if cores > 1 { cores } else { 0 },
            part_retries: 3,
            size_margin_percent: 20,
            suspect_below_percent: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonConfig {
    /// On SIGTERM, how long a running upload may go on before it is aborted.
    /// Keep it below the unit's `TimeoutStopSec`.
    pub drain_timeout_secs: u64,
    /// Run a site once soon after start when its last complete archive is
    /// older than one schedule period (the daemon was down at its time).
    pub catch_up: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            drain_timeout_secs: 90,
            catch_up: true,
        }
    }
}

/// `[network]`: how long a storage request may go without progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NetworkConfig {
    /// A request fails when no byte moved (sent or received) for this
    /// long. There is no deadline on a request as a whole: a slow link may
    /// take hours over a big archive as long as data keeps flowing.
    pub idle_timeout_secs: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
        }
    }
}

impl NetworkConfig {
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idle_timeout_secs)
    }
}

/// `[restore]`: limits on what an archive may make `restore` write (and
/// `verify` read), checked as entries arrive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RestoreConfig {
    /// Entries of any kind.
    pub max_entries: u64,
    /// Bytes of file content written, in GB (10^9 bytes).
    pub max_size_gb: f64,
    /// MiB always left free on the target's file system.
    pub keep_free_mb: u64,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        Self {
            max_entries: crate::archive::extract::DEFAULT_MAX_ENTRIES,
            max_size_gb: crate::archive::extract::DEFAULT_MAX_SIZE_GB,
            keep_free_mb: crate::archive::extract::DEFAULT_KEEP_FREE_MB,
        }
    }
}

impl RestoreConfig {
    pub fn limits(&self) -> crate::archive::extract::ExtractLimits {
        crate::archive::extract::ExtractLimits {
            max_entries: self.max_entries,
            max_bytes: (self.max_size_gb * 1e9) as u64,
            keep_free_bytes: self.keep_free_mb.saturating_mul(MIB),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub id: u32,
    pub storage_limit_bytes: u64,
    pub kind: ServerKind,
}

#[derive(Debug, Clone)]
pub enum ServerKind {
    S3(S3Server),
    Local { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: Endpoint,
    pub region: String,
    pub bucket: String,
    pub access_key: Secret,
    pub secret_key: Secret,
    /// Temporary credentials: sent as `x-amz-security-token` on every
    /// request.
    pub session_token: Option<Secret>,
    pub path_style: bool,
}

impl ServerConfig {
    /// The server's stable identity in the catalog: endpoint and bucket
    /// (`local` and the directory for a directory target).
    pub fn server_ref(&self) -> ServerRef {
        match &self.kind {
            ServerKind::S3(s) => ServerRef::new(s.endpoint.display().to_string(), s.bucket.clone()),
            ServerKind::Local { path } => ServerRef::new(LOCAL_ENDPOINT, path.display().to_string()),
        }
    }
}

impl fmt::Display for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ServerKind::S3(_) => write!(f, "S3Server({}: {})", self.id, self.server_ref()),
            ServerKind::Local { path } => write!(f, "LocalServer({}: {})", self.id, path.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub name: String,
    pub path: PathBuf,
    pub schedule: Schedule,
    /// The `exclude` rules as written.
    pub exclude: Vec<String>,
    pub exclude_file: Option<PathBuf>,
    /// `exclude_file`'s lines then `exclude`, checked (see
    /// [`crate::archive::exclude`]; the site's `.sitebackupignore` is read
    /// by each backup).
    pub excludes: ExcludeRules,
    pub database: Option<DatabaseConfig>,
    pub retention: Option<RetentionPolicy>,
    pub hooks: HooksConfig,
}

/// `[sites.hooks]`, validated. Run by [`crate::hooks`]. The commands are
/// [`Secret`]s: they may hold tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    /// Run in order before the backup; a failure aborts it unless
    /// `before_optional`.
    pub before: Vec<Secret>,
    /// Run after an archive was stored.
    pub after: Vec<Secret>,
    /// Run after a failed backup.
    pub on_error: Vec<Secret>,
    /// Time limit of each command.
    pub timeout_secs: u64,
    /// Go ahead with the backup (with a warning) when a `before` hook fails.
    pub before_optional: bool,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            before: Vec::new(),
            after: Vec::new(),
            on_error: Vec::new(),
            timeout_secs: DEFAULT_HOOK_TIMEOUT_SECS,
            before_optional: false,
        }
    }
}

impl HooksConfig {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty() && self.on_error.is_empty()
    }
}

impl Config {
    pub fn site(&self, name: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// The part of every bucket this installation writes under:
    /// `{host_id}/`, or `{node_uuid}/` in node mode.
    pub fn owner(&self) -> crate::layout::Owner {
        match &self.mode {
            Mode::Standalone => crate::layout::Owner::Host(self.host_id.clone()),
            Mode::Node(node) => crate::layout::Owner::Node(node.node_uuid.clone()),
        }
    }

    /// The `[master]` settings in node mode.
    pub fn node(&self) -> Option<&NodeConfig> {
        match &self.mode {
            Mode::Node(node) => Some(node),
            Mode::Standalone => None,
        }
    }

    /// The configured server holding objects at `location`.
    pub fn server_at(&self, location: &ServerRef) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| &s.server_ref() == location)
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.state_dir.join("catalog.db")
    }
}
