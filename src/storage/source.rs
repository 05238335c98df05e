//! Where the servers come from: the one abstraction that hands the rest of
//! the program its ordered list of storage servers, each with its limit,
//! its current usage and an opened [`ObjectStore`].
//!
//! In standalone mode a [`ConfigSource`] yields the configured servers
//! (`[[servers]]` and `S3_SERVER_N_*`), with usage from the catalog. In
//! node mode a lease from the master yields its providers the same way, so
//! the failover code has one path for both. This module is the only caller
//! of the store constructors.

use super::{LocalStore, ObjectStore, S3Store, StorageError};
use crate::catalog::Catalog;
use crate::config::{Config, NetworkConfig, ServerConfig, ServerKind};
use crate::layout::{Placement, ServerRef};
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;

/// What the servers are wanted for. A master never refuses a read lease
/// for quota; an upload lease carries the archive estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Upload {
        estimated_bytes: u64,
    },
    /// Restore, verify, prune and reconcile: read, list and delete.
    Read,
}

/// One server as a job sees it.
#[derive(Clone)]
pub struct Target {
    /// The order of trial (the `N` of `S3_SERVER_N_*`).
    pub id: u32,
    /// `S3Server(N: endpoint/bucket)` or `LocalServer(N: /dir)`.
    pub name: String,
    /// The stable identity that catalog rows carry.
    pub location: ServerRef,
    pub is_local: bool,
    pub limit_bytes: u64,
    /// Bytes of complete archives on it, as this source knows it.
    pub usage_bytes: u64,
    /// The opened store, or why it could not be opened.
    pub store: Result<Arc<dyn ObjectStore>, Arc<StorageError>>,
}

/// A server as command output shows it: `--json` gets the object, text
/// the name (`S3Server(1: endpoint/bucket)`, as `servers` prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerInfo {
    pub id: u32,
    /// `s3` or `local`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `host:port` of an S3 server; `local` for a directory.
    pub endpoint: String,
    /// The bucket; the directory of a `local` server.
    pub bucket: String,
    #[serde(skip)]
    name: String,
}

impl fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Target {
    pub fn info(&self) -> ServerInfo {
        ServerInfo {
            id: self.id,
            kind: if self.is_local { "local" } else { "s3" },
            endpoint: self.location.endpoint.clone(),
            bucket: self.location.bucket.clone(),
            name: self.name.clone(),
        }
    }

    /// The store, or the error that opening it gave.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>, StorageError> {
        self.store.clone().map_err(|e| StorageError::Other {
            server: self.name.clone(),
            operation: "open",
            detail: e.to_string(),
            class: e.class(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("limit_bytes", &self.limit_bytes)
            .field("usage_bytes", &self.usage_bytes)
            .finish_non_exhaustive()
    }
}

/// Why no list of servers could be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("No S3 servers configured")]
    NoServers,
    #[error("catalog: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    /// The master refused or could not be reached (node mode).
    #[error("{0}")]
    Master(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Yields the ordered servers for a job.
#[async_trait]
pub trait ServerSource: Send + Sync {
    /// Every server, in the order of trial, with limit and usage.
    async fn servers(&self, purpose: Purpose) -> Result<Vec<Target>, SourceError>;

    /// Where the archives written through this source go in the layout:
    /// `{host_id}/…`, or `{node_uuid}/{site_uuid}/…` for a node's lease.
    /// Known once [`servers`](Self::servers) succeeded for an upload.
    fn placement(&self) -> Option<Placement>;

    /// The server holding objects at `location`, if it is still one of
    /// this source's servers.
    async fn server_at(&self, location: &ServerRef) -> Result<Option<Target>, SourceError> {
        Ok(self
            .servers(Purpose::Read)
            .await?
            .into_iter()
            .find(|t| &t.location == location))
    }
}

/// Standalone mode: the configured servers, usage from the catalog.
pub struct ConfigSource {
    servers: Vec<ServerConfig>,
    network: NetworkConfig,
    catalog: Option<Arc<Catalog>>,
    host_id: String,
}

impl ConfigSource {
    /// Servers of `config`. Without a catalog, usage reads as 0 (a fresh
    /// host restoring by key).
    pub fn new(config: &Config, catalog: Option<Arc<Catalog>>) -> Self {
        Self {
            servers: config.servers.clone(),
            network: config.network,
            catalog,
            host_id: config.host_id.clone(),
        }
    }
}

impl Target {
    /// Open a configured server. The one place stores are built.
    pub fn from_config(server: &ServerConfig, network: &NetworkConfig, usage_bytes: u64) -> Target {
        let store: Result<Arc<dyn ObjectStore>, StorageError> = match &server.kind {
            ServerKind::S3(s3) => S3Store::new(server.id, s3, network).map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            ServerKind::Local { path } => Ok(Arc::new(LocalStore::new(server.id, path.clone()))),
        };
        Target {
            id: server.id,
            name: server.to_string(),
            location: server.server_ref(),
            is_local: matches!(server.kind, ServerKind::Local { .. }),
            limit_bytes: server.storage_limit_bytes,
            usage_bytes,
            store: store.map_err(Arc::new),
        }
    }
}

impl Target {
    /// A configured server whose store is already open: for a source that
    /// wraps or shares stores (the pipeline's tests inject faults this
    /// way). Name, identity and limit come from `server`.
    pub fn with_store(server: &ServerConfig, usage_bytes: u64, store: Arc<dyn ObjectStore>) -> Target {
        Target {
            id: server.id,
            name: server.to_string(),
            location: server.server_ref(),
            is_local: matches!(server.kind, ServerKind::Local { .. }),
            limit_bytes: server.storage_limit_bytes,
            usage_bytes,
            store: Ok(store),
        }
    }
}

#[async_trait]
impl ServerSource for ConfigSource {
    fn placement(&self) -> Option<Placement> {
        Some(Placement::Standalone {
            host_id: self.host_id.clone(),
        })
    }

    async fn servers(&self, _purpose: Purpose) -> Result<Vec<Target>, SourceError> {
        if self.servers.is_empty() {
            return Err(SourceError::NoServers);
        }
        let usage = match &self.catalog {
            Some(cat) => {
                let cat = cat.clone();
                let refs: Vec<ServerRef> = self.servers.iter().map(ServerConfig::server_ref).collect();
                tokio::task::spawn_blocking(move || refs.iter().map(|r| cat.usage(r)).collect::<Result<Vec<_>, _>>())
                    .await
                    .map_err(|e| SourceError::Internal(e.to_string()))??
            }
            None => vec![0; self.servers.len()],
        };
        let mut targets: Vec<Target> = self
            .servers
            .iter()
            .zip(usage)
            .map(|(s, u)| Target::from_config(s, &self.network, u))
            .collect();
        targets.sort_by_key(|t| t.id);
        Ok(targets)
    }
}
