//! The effective configuration with secrets redacted, for `config check`.

use super::*;
use serde::Serialize;
use std::path::PathBuf;

/// What a redacted secret reads as. `config check`'s output loads again
/// once each of these is replaced by the real value.
pub const REDACTED: &str = "<redacted>";

/// The effective configuration with secrets redacted, for `config check`:
/// the TOML file's own key names and shapes, so the output is a config file.
#[derive(Debug, Serialize)]
pub struct RedactedConfig {
    pub host_id: String,
    pub state_dir: PathBuf,
    pub timezone: String,
    /// `standalone` or `node`.
    pub mode: &'static str,
    pub upload: RedactedUpload,
    pub daemon: DaemonConfig,
    pub network: NetworkConfig,
    pub restore: RestoreConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<RedactedMaster>,
    pub servers: Vec<RedactedServer>,
    pub sites: Vec<RedactedSite>,
}

/// `[upload]` in the file's units (`part_size_mb`).
#[derive(Debug, Serialize)]
pub struct RedactedUpload {
    pub part_size_mb: u64,
    pub concurrency: usize,
    pub queue_depth: usize,
    pub zstd_level: i32,
    pub zstd_threads: u32,
    pub part_retries: u32,
    pub size_margin_percent: u64,
    pub suspect_below_percent: u64,
}

/// `[master]` of a node; the token itself is never shown.
#[derive(Debug, Serialize)]
pub struct RedactedMaster {
    pub url: String,
    pub node_uuid: String,
    pub token_file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub sync_interval_secs: u64,
    pub retry_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct RedactedServer {
    pub id: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The first characters of the key id only (`AKIA…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<&'static str>,
    pub storage_limit_gb: f64,
}

#[derive(Debug, Serialize)]
pub struct RedactedSite {
    pub name: String,
    pub path: PathBuf,
    pub schedule: String,
    pub exclude: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<RedactedDatabase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RawRetention>,
    /// Hook commands may hold tokens: each shows as [`REDACTED`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RedactedHooks>,
}

/// `[sites.database]`; what is not set here is read from `wp-config.php`.
#[derive(Debug, Serialize)]
pub struct RedactedDatabase {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    pub timeout_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct RedactedHooks {
    pub before: Vec<&'static str>,
    pub after: Vec<&'static str>,
    pub on_error: Vec<&'static str>,
    pub timeout_secs: u64,
    pub before_optional: bool,
}

fn redacted_list<T>(items: &[T]) -> Vec<&'static str> {
    vec![REDACTED; items.len()]
}

impl Config {
    pub fn redacted(&self) -> RedactedConfig {
        RedactedConfig {
            host_id: self.host_id.clone(),
            state_dir: self.state_dir.clone(),
            timezone: self.timezone.name().to_string(),
            upload: RedactedUpload {
                part_size_mb: self.upload.part_size / MIB,
                concurrency: self.upload.concurrency,
                queue_depth: self.upload.queue_depth,
                zstd_level: self.upload.zstd_level,
                zstd_threads: self.upload.zstd_threads,
                part_retries: self.upload.part_retries,
                size_margin_percent: self.upload.size_margin_percent,
                suspect_below_percent: self.upload.suspect_below_percent,
            },
            daemon: self.daemon.clone(),
            network: self.network,
            restore: self.restore,
            mode: if self.node().is_some() { "node" } else { "standalone" },
            master: self.node().map(|n| RedactedMaster {
                url: n.url.to_string(),
                node_uuid: n.node_uuid.clone(),
                token_file: n.token_file.clone(),
                ca_file: n.ca_file.clone(),
                sync_interval_secs: n.sync_interval_secs,
                retry_secs: n.retry_secs,
            }),
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
                            secret_key: Some(REDACTED),
                            session_token: s3.session_token.as_ref().map(|_| REDACTED),
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
                            session_token: None,
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
                    schedule: s.schedule.as_str().to_string(),
                    exclude: s.exclude.clone(),
                    database: s.database.as_ref().map(|d| RedactedDatabase {
                        enabled: d.enabled,
                        name: d.name.clone(),
                        user: d.user.clone(),
                        password: d.password.as_ref().map(|_| REDACTED),
                        host: d.host.clone(),
                        port: d.port,
                        socket: d.socket.clone(),
                        timeout_secs: d.timeout_secs,
                    }),
                    retention: s.retention.as_ref().map(RetentionPolicy::to_raw),
                    hooks: (!s.hooks.is_empty()).then_some(RedactedHooks {
                        before: redacted_list(&s.hooks.before),
                        after: redacted_list(&s.hooks.after),
                        on_error: redacted_list(&s.hooks.on_error),
                        timeout_secs: s.hooks.timeout_secs,
                        before_optional: s.hooks.before_optional,
                    }),
                })
                .collect(),
        }
    }
}
