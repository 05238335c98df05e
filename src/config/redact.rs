//! The effective configuration with secrets redacted, for `config check`.

use super::*;
use serde::Serialize;
use std::path::PathBuf;

/// The effective configuration with secrets redacted, for `config check`.
#[derive(Debug, Serialize)]
pub struct RedactedConfig {
    pub source: Option<PathBuf>,
    pub host_id: String,
    pub state_dir: PathBuf,
    pub timezone: String,
    pub upload: UploadConfig,
    pub daemon: DaemonConfig,
    pub network: NetworkConfig,
    pub restore: RestoreConfig,
    /// `standalone` or `node`.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<RedactedMaster>,
    pub servers: Vec<RedactedServer>,
    pub sites: Vec<RedactedSite>,
}

/// `[master]` of a node; the token itself is never shown.
#[derive(Debug, Serialize)]
pub struct RedactedMaster {
    pub url: String,
    pub node_uuid: String,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub sync_interval_secs: u64,
    pub retry_secs: u64,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_file: Option<PathBuf>,
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
                    schedule: s.schedule.as_str().to_string(),
                    exclude: s.exclude.clone(),
                    exclude_file: s.exclude_file.clone(),
                    database: s.database.as_ref().map(DatabaseConfig::describe),
                    retention: s.retention.as_ref().map(RetentionPolicy::to_raw),
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
}
