//! Configuration: TOML file + environment (+ a dotenv file) → a validated
//! [`Config`].
//!
//! This is the only module that knows env var names, TOML keys and defaults.
//! Loading is split in two: gathering the sources (file system, process
//! environment) and [`build`], a pure function over them that collects
//! *every* problem before failing. Secrets are held in [`Secret`] so that no
//! `Debug`, log line or error can print them.

mod endpoint;
mod raw;
mod secret;

pub use endpoint::Endpoint;
pub use raw::{RawConfig, RawDatabase, RawHooks, RawRetention, RawServer};
pub use secret::Secret;

pub use crate::layout::is_safe_name;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Default location of the TOML file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/sitebackup/config.toml";
/// Default state directory (the catalog and lock files live here).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sitebackup";
/// Default cron schedule for a site without one: daily at 03:00 UTC.
pub const DEFAULT_SCHEDULE: &str = "0 0 3 * * *";
/// Default storage limit of a server, in GB (10^9 bytes).
pub const DEFAULT_STORAGE_LIMIT_GB: f64 = 100.0;
/// Default time limit of one hook command.
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 300;
/// Longest allowed hook time limit (one day).
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 86_400;

const MIB: u64 = 1024 * 1024;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host_id: String,
    pub state_dir: PathBuf,
    /// Time zone of the cron schedules (default UTC).
    pub timezone: chrono_tz::Tz,
    pub upload: UploadConfig,
    pub daemon: DaemonConfig,
    /// Ordered by id: this is the order in which servers are tried.
    pub servers: Vec<ServerConfig>,
    pub sites: Vec<SiteConfig>,
    /// The TOML file the config came from, if any.
    pub source: Option<PathBuf>,
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
    pub path_style: bool,
}

impl ServerConfig {
    /// `endpoint/bucket` for S3, `local:/dir` for a directory: the server's
    /// identity in output, logs and the catalog.
    pub fn location(&self) -> String {
        match &self.kind {
            ServerKind::S3(s) => format!("{}/{}", s.endpoint.display(), s.bucket),
            ServerKind::Local { path } => format!("local:{}", path.display()),
        }
    }

    /// The endpoint as recorded in the catalog.
    pub fn endpoint_label(&self) -> String {
        match &self.kind {
            ServerKind::S3(s) => s.endpoint.display().to_string(),
            ServerKind::Local { .. } => "local".to_string(),
        }
    }

    pub fn bucket_label(&self) -> String {
        match &self.kind {
            ServerKind::S3(s) => s.bucket.clone(),
            ServerKind::Local { path } => path.display().to_string(),
        }
    }
}

impl fmt::Display for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ServerKind::S3(_) => write!(f, "S3Server({}: {})", self.id, self.location()),
            ServerKind::Local { path } => write!(f, "LocalServer({}: {})", self.id, path.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub name: String,
    pub path: PathBuf,
    pub schedule: String,
    pub exclude: Vec<String>,
    pub exclude_set: GlobSet,
    pub database: Option<RawDatabase>,
    pub retention: Option<RawRetention>,
    pub hooks: HooksConfig,
}

/// `[sites.hooks]`, validated. Run by [`crate::hooks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HooksConfig {
    /// Run in order before the backup; a failure aborts it unless
    /// `before_optional`.
    pub before: Vec<String>,
    /// Run after an archive was stored.
    pub after: Vec<String>,
    /// Run after a failed backup.
    pub on_error: Vec<String>,
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

/// One thing wrong with the configuration, naming where to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The TOML key, e.g. `servers[id=2].bucket`.
    pub key: String,
    /// The environment variable for the same setting, if there is one.
    pub env: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env {
            Some(env) => write!(f, "{} (env {}): {}", self.key, env, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("cannot read env file {path}: {message}")]
    EnvFile { path: PathBuf, message: String },
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Invalid(p) => p.clone(),
            other => vec![Problem {
                key: "config".into(),
                env: None,
                message: other.to_string(),
            }],
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    let mut s = format!("invalid configuration ({} problem(s)):", problems.len());
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(&p.to_string());
    }
    s
}

/// Where to load from. `None` fields fall back to the documented defaults.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    pub config_path: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
}

/// Load the dotenv file into the process environment, read the TOML file
/// and the environment, and validate.
pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
    load_env_file(opts.env_file.as_deref())?;
    load_without_env_file(opts)
}

/// Re-read the TOML file against the environment as it is, without
/// loading the dotenv file again: for SIGHUP, where the process has other
/// threads (changing the environment then is not safe) and systemd's
/// `EnvironmentFile=` is only read at start anyway.
pub fn load_without_env_file(opts: &LoadOptions) -> Result<Config, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let (raw, source) = read_toml(opts.config_path.as_deref(), &env)?;
    let mut config = build(raw, &env)?;
    config.source = source;
    Ok(config)
}

/// `--env-file`, else `./.env` if present. Variables already set in the
/// environment are not overridden.
fn load_env_file(path: Option<&Path>) -> Result<(), ConfigError> {
    let result = match path {
        Some(p) => dotenvy::from_path(p).map_err(|e| (p.to_path_buf(), e)),
        None => match dotenvy::from_path(".env") {
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other.map_err(|e| (PathBuf::from(".env"), e)),
        },
    };
    result.map_err(|(path, e)| ConfigError::EnvFile {
        path,
        // dotenvy's parse errors quote the offending line, which may hold a
        // secret: report only the position.
        message: match e {
            dotenvy::Error::LineParse(_, idx) => format!("syntax error at byte {idx}"),
            dotenvy::Error::Io(io) => io.to_string(),
            _ => "cannot parse".into(),
        },
    })
}

fn read_toml(
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<(RawConfig, Option<PathBuf>), ConfigError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match env.get("SITEBACKUP_CONFIG") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        },
    };
    if !path.exists() {
        if required {
            return Err(ConfigError::File {
                path,
                message: "no such file".into(),
            });
        }
        return Ok((RawConfig::default(), None));
    }
    let raw = config::Config::builder()
        .add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<RawConfig>())
        .map_err(|e| ConfigError::File {
            path: path.clone(),
            message: scrub_parse_error(&e.to_string()),
        })?;
    Ok((raw, Some(path)))
}

/// TOML parse errors quote the offending source line, which may hold a
/// secret (`secret_key = "…` with a missing quote). Keep the position and
/// the message, drop every quoted source line.
fn scrub_parse_error(message: &str) -> String {
    message
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            let quoted = t
                .split_once('|')
                .is_some_and(|(lead, _)| lead.trim().chars().all(|c| c.is_ascii_digit()));
            !quoted && !t.is_empty()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fields of `S3_SERVER_N_*` and their TOML names.
const SERVER_FIELDS: &[(&str, &str)] = &[
    ("ENDPOINT", "endpoint"),
    ("REGION", "region"),
    ("BUCKET", "bucket"),
    ("ACCESS_KEY", "access_key"),
    ("ACCESS_KEY_FILE", "access_key_file"),
    ("SECRET_KEY", "secret_key"),
    ("SECRET_KEY_FILE", "secret_key_file"),
    ("STORAGE_LIMIT_GB", "storage_limit_gb"),
    ("PATH_STYLE", "path_style"),
    ("TYPE", "type"),
    ("PATH", "path"),
];

fn server_env(id: u32, field: &str) -> String {
    format!("S3_SERVER_{id}_{field}")
}

fn problem(key: impl Into<String>, env: Option<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        env,
        message: message.into(),
    }
}

/// Servers from `S3_SERVER_N_*`, keyed by N. Unknown suffixes and bad
/// numbers are problems (a typo must not silently drop a server).
fn env_servers(env: &BTreeMap<String, String>, problems: &mut Vec<Problem>) -> BTreeMap<u32, RawServer> {
    let mut out: BTreeMap<u32, RawServer> = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("S3_SERVER_") else {
            continue;
        };
        let Some((num, field)) = rest.split_once('_') else {
            problems.push(problem("servers", Some(name.clone()), "expected S3_SERVER_<N>_<FIELD>"));
            continue;
        };
        let id = match num.parse::<u32>() {
            Ok(id) if id > 0 => id,
            _ => {
                problems.push(problem(
                    "servers",
                    Some(name.clone()),
                    format!("server number {num:?} is not a positive integer"),
                ));
                continue;
            }
        };
        let key = |f: &str| format!("servers[id={id}].{f}");
        let s = out.entry(id).or_default();
        match field {
            "ENDPOINT" => s.endpoint = Some(value.clone()),
            "REGION" => s.region = Some(value.clone()),
            "BUCKET" => s.bucket = Some(value.clone()),
            "ACCESS_KEY" => s.access_key = Some(value.clone()),
            "ACCESS_KEY_FILE" => s.access_key_file = Some(value.into()),
            "SECRET_KEY" => s.secret_key = Some(value.clone()),
            "SECRET_KEY_FILE" => s.secret_key_file = Some(value.into()),
            "TYPE" => s.kind = Some(value.clone()),
            "PATH" => s.path = Some(value.into()),
            "STORAGE_LIMIT_GB" => match value.trim().parse::<f64>() {
                Ok(v) => s.storage_limit_gb = Some(v),
                Err(_) => problems.push(problem(
                    key("storage_limit_gb"),
                    Some(name.clone()),
                    format!("expected a number of GB such as 100 or 0.5, found {value:?}"),
                )),
            },
            "PATH_STYLE" => match parse_bool(value) {
                Some(v) => s.path_style = Some(v),
                None => problems.push(problem(
                    key("path_style"),
                    Some(name.clone()),
                    format!("expected true or false, found {value:?}"),
                )),
            },
            other => {
                let known: Vec<&str> = SERVER_FIELDS.iter().map(|(e, _)| *e).collect();
                problems.push(problem(
                    "servers",
                    Some(name.clone()),
                    format!("unknown field {other:?}; known fields: {}", known.join(", ")),
                ));
            }
        }
    }
    out
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Env wins per field. A secret and its `_file` form count as one field, so
/// an env `SECRET_KEY` replaces a TOML `secret_key_file` and vice versa.
fn merge_server(toml: RawServer, env: RawServer) -> RawServer {
    let (access_key, access_key_file) = if env.access_key.is_some() || env.access_key_file.is_some() {
        (env.access_key, env.access_key_file)
    } else {
        (toml.access_key, toml.access_key_file)
    };
    let (secret_key, secret_key_file) = if env.secret_key.is_some() || env.secret_key_file.is_some() {
        (env.secret_key, env.secret_key_file)
    } else {
        (toml.secret_key, toml.secret_key_file)
    };
    RawServer {
        id: toml.id,
        kind: env.kind.or(toml.kind),
        endpoint: env.endpoint.or(toml.endpoint),
        region: env.region.or(toml.region),
        bucket: env.bucket.or(toml.bucket),
        access_key,
        access_key_file,
        secret_key,
        secret_key_file,
        storage_limit_gb: env.storage_limit_gb.or(toml.storage_limit_gb),
        path_style: env.path_style.or(toml.path_style),
        path: env.path.or(toml.path),
    }
}

/// Build and validate a [`Config`] from the parsed TOML and an environment
/// map. Pure apart from reading `*_file` secrets and checking site paths.
pub fn build(raw: RawConfig, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();

    let host_id = env
        .get("SITEBACKUP_HOST_ID")
        .cloned()
        .or(raw.host_id)
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    if !is_safe_name(&host_id) {
        problems.push(problem(
            "host_id",
            Some("SITEBACKUP_HOST_ID".into()),
            format!("{host_id:?} must be non-empty, use only A-Z a-z 0-9 . _ - and not start with a dot"),
        ));
    }
    let state_dir = env
        .get("SITEBACKUP_STATE_DIR")
        .map(PathBuf::from)
        .or(raw.state_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));

    let timezone = match env.get("SITEBACKUP_TIMEZONE").cloned().or(raw.timezone) {
        None => chrono_tz::UTC,
        Some(name) => match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                problems.push(problem(
                    "timezone",
                    Some("SITEBACKUP_TIMEZONE".into()),
                    format!("unknown time zone {name:?}; use an IANA name such as \"UTC\" or \"Europe/London\""),
                ));
                chrono_tz::UTC
            }
        },
    };
    let upload = build_upload(&raw.upload, env, &mut problems);
    let mut daemon = DaemonConfig::default();
    match env
        .get("SITEBACKUP_DRAIN_TIMEOUT_SECS")
        .map(|v| v.trim().parse::<u64>())
    {
        Some(Ok(v)) => daemon.drain_timeout_secs = v,
        Some(Err(_)) => problems.push(problem(
            "daemon.drain_timeout_secs",
            Some("SITEBACKUP_DRAIN_TIMEOUT_SECS".into()),
            "expected a whole number of seconds",
        )),
        None => {
            if let Some(v) = raw.daemon.drain_timeout_secs {
                daemon.drain_timeout_secs = v;
            }
        }
    }
    match env.get("SITEBACKUP_CATCH_UP").map(|v| parse_bool(v)) {
        Some(Some(v)) => daemon.catch_up = v,
        Some(None) => problems.push(problem(
            "daemon.catch_up",
            Some("SITEBACKUP_CATCH_UP".into()),
            "expected true or false",
        )),
        None => {
            if let Some(v) = raw.daemon.catch_up {
                daemon.catch_up = v;
            }
        }
    }

    // Servers: TOML first, then env merged over it by id.
    let mut by_id: BTreeMap<u32, RawServer> = BTreeMap::new();
    for (idx, s) in raw.servers.into_iter().enumerate() {
        match s.id {
            Some(id) if id > 0 && id <= i64::from(u32::MAX) => {
                let id = id as u32;
                if by_id.insert(id, s).is_some() {
                    problems.push(problem(
                        format!("servers[{idx}].id"),
                        None,
                        format!("id {id} is used by more than one [[servers]] entry"),
                    ));
                }
            }
            Some(id) => problems.push(problem(
                format!("servers[{idx}].id"),
                None,
                format!("must be a positive integer, found {id}"),
            )),
            None => problems.push(problem(
                format!("servers[{idx}].id"),
                None,
                "missing: every [[servers]] entry needs `id = N` (it sets the order of trial)",
            )),
        }
    }
    for (id, env_server) in env_servers(env, &mut problems) {
        let toml = by_id.remove(&id).unwrap_or_default();
        by_id.insert(id, merge_server(toml, env_server));
    }
    if by_id.is_empty() {
        problems.push(problem(
            "servers",
            Some("S3_SERVER_1_ENDPOINT".into()),
            "No S3 servers configured: set S3_SERVER_1_ENDPOINT (and _REGION, _ACCESS_KEY, _SECRET_KEY, _BUCKET) or add a [[servers]] entry",
        ));
    }
    let servers: Vec<ServerConfig> = by_id
        .into_iter()
        .filter_map(|(id, raw)| build_server(id, raw, &mut problems))
        .collect();

    let mut sites = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (idx, s) in raw.sites.into_iter().enumerate() {
        if let Some(site) = build_site(idx, s, &mut problems) {
            if !seen.insert(site.name.clone()) {
                problems.push(problem(
                    format!("sites[{}].name", site.name),
                    None,
                    "the same site name is used twice",
                ));
            }
            sites.push(site);
        }
    }

    if problems.is_empty() {
        Ok(Config {
            host_id,
            state_dir,
            timezone,
            upload,
            daemon,
            servers,
            sites,
            source: None,
        })
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

fn build_upload(raw: &raw::RawUpload, env: &BTreeMap<String, String>, problems: &mut Vec<Problem>) -> UploadConfig {
    let mut u = UploadConfig::default();
    let mut num = |toml_key: &str, env_key: &str, toml: Option<u64>, min: u64, max: u64| -> Option<u64> {
        let (value, from_env) = match env.get(env_key) {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => (Some(n), true),
                Err(_) => {
                    problems.push(problem(
                        format!("upload.{toml_key}"),
                        Some(env_key.into()),
                        format!("expected a whole number, found {v:?}"),
                    ));
                    return None;
                }
            },
            None => (toml, false),
        };
        let v = value?;
        if v < min || v > max {
            let _ = from_env;
            problems.push(problem(
                format!("upload.{toml_key}"),
                Some(env_key.into()),
                format!("must be between {min} and {max}, found {v}"),
            ));
            return None;
        }
        Some(v)
    };
    if let Some(v) = num("part_size_mb", "SITEBACKUP_PART_SIZE_MB", raw.part_size_mb, 5, 5 * 1024) {
        u.part_size = v * MIB;
    }
    if let Some(v) = num(
        "concurrency",
        "SITEBACKUP_UPLOAD_CONCURRENCY",
        raw.concurrency.map(|v| v as u64),
        1,
        64,
    ) {
        u.concurrency = v as usize;
    }
    if let Some(v) = num(
        "queue_depth",
        "SITEBACKUP_QUEUE_DEPTH",
        raw.queue_depth.map(|v| v as u64),
        1,
        64,
    ) {
        u.queue_depth = v as usize;
    }
    if let Some(v) = num(
        "zstd_level",
        "SITEBACKUP_ZSTD_LEVEL",
        raw.zstd_level.map(|v| v.max(0) as u64),
        1,
        19,
    ) {
        u.zstd_level = v as i32;
    }
    if let Some(v) = num(
        "zstd_threads",
        "SITEBACKUP_ZSTD_THREADS",
        raw.zstd_threads.map(u64::from),
        0,
        256,
    ) {
        u.zstd_threads = v as u32;
    }
    if let Some(v) = num(
        "part_retries",
        "SITEBACKUP_PART_RETRIES",
        raw.part_retries.map(u64::from),
        0,
        20,
    ) {
        u.part_retries = v as u32;
    }
    if let Some(v) = num(
        "size_margin_percent",
        "SITEBACKUP_SIZE_MARGIN_PERCENT",
        raw.size_margin_percent,
        0,
        1000,
    ) {
        u.size_margin_percent = v;
    }
    u
}

fn build_server(id: u32, raw: RawServer, problems: &mut Vec<Problem>) -> Option<ServerConfig> {
    let key = |f: &str| format!("servers[id={id}].{f}");
    let env = |f: &str| Some(server_env(id, f));
    let before = problems.len();

    let storage_limit_gb = raw.storage_limit_gb.unwrap_or(DEFAULT_STORAGE_LIMIT_GB);
    if !(storage_limit_gb.is_finite() && storage_limit_gb > 0.0) {
        problems.push(problem(
            key("storage_limit_gb"),
            env("STORAGE_LIMIT_GB"),
            format!("must be a positive number of GB, found {storage_limit_gb}"),
        ));
    }
    let storage_limit_bytes = (storage_limit_gb * 1e9).round() as u64;

    let kind = raw.kind.as_deref().unwrap_or("s3").to_ascii_lowercase();
    let kind = match kind.as_str() {
        "local" => match raw.path {
            Some(path) if path.is_absolute() => Some(ServerKind::Local { path }),
            Some(path) => {
                problems.push(problem(
                    key("path"),
                    env("PATH"),
                    format!("must be an absolute directory path, found {}", path.display()),
                ));
                None
            }
            None => {
                problems.push(problem(
                    key("path"),
                    env("PATH"),
                    "missing: a local server needs a directory",
                ));
                None
            }
        },
        "s3" => {
            let mut required = |value: Option<String>, f: &str, e: &str| -> Option<String> {
                match value {
                    Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                    _ => {
                        problems.push(problem(key(f), env(e), "missing (required)"));
                        None
                    }
                }
            };
            let endpoint = required(raw.endpoint, "endpoint", "ENDPOINT");
            let region = required(raw.region, "region", "REGION");
            let bucket = required(raw.bucket, "bucket", "BUCKET");
            let endpoint = endpoint.and_then(|e| match Endpoint::parse(&e) {
                Ok(ep) => Some(ep),
                Err(msg) => {
                    problems.push(problem(key("endpoint"), env("ENDPOINT"), msg));
                    None
                }
            });
            if let Some(b) = &bucket
                && !(3..=63).contains(&b.len())
            {
                problems.push(problem(
                    key("bucket"),
                    env("BUCKET"),
                    "a bucket name has 3 to 63 characters",
                ));
            }
            let access_key = read_secret(
                raw.access_key,
                raw.access_key_file,
                (&key("access_key"), &server_env(id, "ACCESS_KEY")),
                problems,
            );
            let secret_key = read_secret(
                raw.secret_key,
                raw.secret_key_file,
                (&key("secret_key"), &server_env(id, "SECRET_KEY")),
                problems,
            );
            match (endpoint, region, bucket, access_key, secret_key) {
                (Some(endpoint), Some(region), Some(bucket), Some(access_key), Some(secret_key)) => {
                    let path_style = raw.path_style.unwrap_or(!endpoint.is_aws());
                    Some(ServerKind::S3(S3Server {
                        endpoint,
                        region,
                        bucket,
                        access_key,
                        secret_key,
                        path_style,
                    }))
                }
                _ => None,
            }
        }
        other => {
            problems.push(problem(
                key("type"),
                env("TYPE"),
                format!("unknown server type {other:?}; expected \"s3\" or \"local\""),
            ));
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    kind.map(|kind| ServerConfig {
        id,
        storage_limit_bytes,
        kind,
    })
}

/// A secret given inline or through a file. The file must not be readable
/// by everyone; its trailing newline is dropped.
fn read_secret(
    inline: Option<String>,
    file: Option<PathBuf>,
    (key, env): (&str, &str),
    problems: &mut Vec<Problem>,
) -> Option<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push(problem(
                key,
                Some(env.into()),
                format!("set either {key} or {key}_file, not both"),
            ));
            None
        }
        (Some(v), None) if !v.is_empty() => Some(Secret::new(v)),
        (Some(_), None) | (None, None) => {
            problems.push(problem(
                key,
                Some(env.into()),
                format!("missing (required); {env}_FILE may name a file holding it"),
            ));
            None
        }
        (None, Some(path)) => match read_secret_file(&path) {
            Ok(s) => Some(s),
            Err(msg) => {
                problems.push(problem(format!("{key}_file"), Some(format!("{env}_FILE")), msg));
                None
            }
        },
    }
}

/// Read a secret from a file that is not world-readable.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(format!(
            "{} is world-readable (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}

/// Parse a 6-field cron expression, seconds first.
pub fn parse_schedule(expr: &str) -> Result<croner::Cron, String> {
    if expr.split_whitespace().count() != 6 {
        return Err(format!(
            "{expr:?} is not a 6-field cron expression (seconds minutes hours day-of-month month day-of-week), e.g. \"0 30 8 * * *\""
        ));
    }
    croner::Cron::new(expr)
        .with_seconds_required()
        .parse()
        .map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))
}

fn build_site(idx: usize, raw: raw::RawSite, problems: &mut Vec<Problem>) -> Option<SiteConfig> {
    let before = problems.len();
    let label = raw.name.clone().unwrap_or_else(|| idx.to_string());
    let key = |f: &str| format!("sites[{label}].{f}");
    let name = match raw.name {
        Some(n) if is_safe_name(&n) => Some(n),
        Some(n) => {
            problems.push(problem(
                key("name"),
                None,
                format!("{n:?} must use only A-Z a-z 0-9 . _ -"),
            ));
            None
        }
        None => {
            problems.push(problem(key("name"), None, "missing (required)"));
            None
        }
    };
    let path = match raw.path {
        Some(p) if !p.is_absolute() => {
            problems.push(problem(
                key("path"),
                None,
                format!("must be absolute, found {}", p.display()),
            ));
            None
        }
        Some(p) if !p.is_dir() => {
            problems.push(problem(
                key("path"),
                None,
                format!("{} is not a readable directory", p.display()),
            ));
            None
        }
        Some(p) => Some(p),
        None => {
            problems.push(problem(key("path"), None, "missing (required)"));
            None
        }
    };
    let schedule = raw.schedule.unwrap_or_else(|| DEFAULT_SCHEDULE.to_string());
    if let Err(msg) = parse_schedule(&schedule) {
        problems.push(problem(key("schedule"), None, msg));
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in &raw.exclude {
        match Glob::new(pattern.trim_start_matches('/')) {
            Ok(g) => {
                builder.add(g);
            }
            Err(e) => problems.push(problem(key("exclude"), None, format!("bad glob {pattern:?}: {e}"))),
        }
    }
    let exclude_set = match builder.build() {
        Ok(set) => set,
        Err(e) => {
            problems.push(problem(key("exclude"), None, e.to_string()));
            GlobSet::empty()
        }
    };
    if let Some(r) = &raw.retention
        && let Err(msg) = crate::retention::RetentionPolicy::from_raw(r)
    {
        problems.push(problem(key("retention.keep_within"), None, msg));
    }
    if let Some(db) = &raw.database {
        if let (Some(_), Some(_)) = (&db.password, &db.password_file) {
            problems.push(problem(
                key("database.password"),
                None,
                "set either password or password_file, not both",
            ));
        } else if let Some(file) = &db.password_file
            && let Err(msg) = read_secret_file(file)
        {
            problems.push(problem(key("database.password_file"), None, msg));
        }
        if db.socket.is_some() && (db.host.is_some() || db.port.is_some()) {
            problems.push(problem(
                key("database.socket"),
                None,
                "set either socket or host/port, not both",
            ));
        }
        if let Some(name) = &db.name
            && let Err(e) = crate::database::check_db_name(name)
        {
            problems.push(problem(key("database.name"), None, e.to_string()));
        }
        if db.password.is_some() && db.user.is_none() {
            problems.push(problem(
                key("database.password"),
                None,
                "a password needs a user: set database.user too (without it, user and password come from wp-config.php)",
            ));
        }
    }
    let hooks = build_hooks(raw.hooks.unwrap_or_default(), &key, problems);
    if problems.len() > before {
        return None;
    }
    Some(SiteConfig {
        name: name?,
        path: path?,
        schedule,
        exclude: raw.exclude,
        exclude_set,
        database: raw.database,
        retention: raw.retention,
        hooks,
    })
}

fn build_hooks(raw: RawHooks, key: &dyn Fn(&str) -> String, problems: &mut Vec<Problem>) -> HooksConfig {
    let timeout_secs = raw.timeout_secs.unwrap_or(DEFAULT_HOOK_TIMEOUT_SECS);
    if !(1..=MAX_HOOK_TIMEOUT_SECS).contains(&timeout_secs) {
        problems.push(problem(
            key("hooks.timeout_secs"),
            None,
            format!("must be between 1 and {MAX_HOOK_TIMEOUT_SECS} seconds, found {timeout_secs}"),
        ));
    }
    for (stage, commands) in [
        ("before", &raw.before),
        ("after", &raw.after),
        ("on_error", &raw.on_error),
    ] {
        if let Some(i) = commands.iter().position(|c| c.trim().is_empty()) {
            problems.push(problem(
                key(&format!("hooks.{stage}")),
                None,
                format!("command #{} is empty", i + 1),
            ));
        }
    }
    HooksConfig {
        before: raw.before,
        after: raw.after,
        on_error: raw.on_error,
        timeout_secs,
        before_optional: raw.before_optional.unwrap_or(false),
    }
}

/// The effective configuration with secrets redacted, for `config check`.
#[derive(Debug, Serialize)]
pub struct RedactedConfig {
    pub source: Option<PathBuf>,
    pub host_id: String,
    pub state_dir: PathBuf,
    pub timezone: String,
    pub upload: UploadConfig,
    pub daemon: DaemonConfig,
    pub servers: Vec<RedactedServer>,
    pub sites: Vec<RedactedSite>,
}

#[derive(Debug, Serialize)]
pub struct RedactedServer {
    pub id: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub path_style: Option<bool>,
    pub path: Option<PathBuf>,
    pub access_key: Option<String>,
    pub secret_key: Option<&'static str>,
    pub storage_limit_gb: f64,
}

#[derive(Debug, Serialize)]
pub struct RedactedSite {
    pub name: String,
    pub path: PathBuf,
    pub schedule: String,
    pub exclude: Vec<String>,
    pub database: Option<String>,
    pub retention: Option<RawRetention>,
    /// Hook commands are not printed (they may hold tokens): only counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RedactedHooks>,
}

#[derive(Debug, Serialize)]
pub struct RedactedHooks {
    pub before: usize,
    pub after: usize,
    pub on_error: usize,
    pub timeout_secs: u64,
    pub before_optional: bool,
}

impl Config {
    pub fn redacted(&self) -> RedactedConfig {
        RedactedConfig {
            source: self.source.clone(),
            host_id: self.host_id.clone(),
            state_dir: self.state_dir.clone(),
            timezone: self.timezone.name().to_string(),
            upload: self.upload.clone(),
            daemon: self.daemon.clone(),
            servers: self
                .servers
                .iter()
                .map(|s| {
                    let limit = s.storage_limit_bytes as f64 / 1e9;
                    match &s.kind {
                        ServerKind::S3(s3) => RedactedServer {
                            id: s.id,
                            kind: "s3",
                            endpoint: Some(s3.endpoint.url().to_string()),
                            region: Some(s3.region.clone()),
                            bucket: Some(s3.bucket.clone()),
                            path_style: Some(s3.path_style),
                            path: None,
                            access_key: Some(s3.access_key.hint()),
                            secret_key: Some("<redacted>"),
                            storage_limit_gb: limit,
                        },
                        ServerKind::Local { path } => RedactedServer {
                            id: s.id,
                            kind: "local",
                            endpoint: None,
                            region: None,
                            bucket: None,
                            path_style: None,
                            path: Some(path.clone()),
                            access_key: None,
                            secret_key: None,
                            storage_limit_gb: limit,
                        },
                    }
                })
                .collect(),
            sites: self
                .sites
                .iter()
                .map(|s| RedactedSite {
                    name: s.name.clone(),
                    path: s.path.clone(),
                    schedule: s.schedule.clone(),
                    exclude: s.exclude.clone(),
                    database: s.database.as_ref().map(|d| match d.enabled {
                        Some(false) => "disabled".to_string(),
                        _ => format!("name={}", d.name.as_deref().unwrap_or("(from wp-config.php)")),
                    }),
                    retention: s.retention.clone(),
                    hooks: (!s.hooks.is_empty()).then_some(RedactedHooks {
                        before: s.hooks.before.len(),
                        after: s.hooks.after.len(),
                        on_error: s.hooks.on_error.len(),
                        timeout_secs: s.hooks.timeout_secs,
                        before_optional: s.hooks.before_optional,
                    }),
                })
                .collect(),
        }
    }

    pub fn site(&self, name: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// The part of every bucket this installation writes under.
    pub fn owner(&self) -> crate::layout::Owner {
        crate::layout::Owner::Host(self.host_id.clone())
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.state_dir.join("catalog.db")
    }
}

#[cfg(test)]
mod tests;
