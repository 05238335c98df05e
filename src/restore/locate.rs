//! Finding an archive: by catalog id, by a key the catalog knows, or — on a
//! fresh host whose catalog is empty — by asking each configured server in
//! order whether it has the key. Then the reference checksums to hold the
//! download against.

use super::RestoreError;
use crate::catalog::{ArchiveRow, ArchiveStatus, Catalog};
use crate::storage::with_retries;
use crate::storage::{self, ObjectStore, Purpose, ServerSource, SourceError, Target};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Transient errors on a look-up are retried this many times.
const RETRIES: u32 = 2;

/// An archive that was found, and the server it is on.
pub struct Located {
    pub server: Target,
    pub store: Arc<dyn ObjectStore>,
    pub key: String,
    /// The catalog row, when the catalog knows the archive.
    pub row: Option<ArchiveRow>,
    /// Object size known before the download (catalog or HEAD).
    pub size: Option<u64>,
    /// Object metadata, when a HEAD request was made.
    pub metadata: BTreeMap<String, String>,
}

/// A checksum the download must match, and where it comes from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reference {
    pub source: ReferenceKind,
    pub sha256: String,
}

/// Where a [`Reference`] checksum was read.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReferenceKind {
    /// The catalog row.
    Catalog,
    /// The `.sha256` object next to the archive.
    Sidecar,
    /// The object's `x-amz-meta-sha256`.
    Metadata,
}

impl Reference {
    /// The source in operator words.
    pub fn describe(&self) -> &'static str {
        match self.source {
            ReferenceKind::Catalog => "catalog",
            ReferenceKind::Sidecar => "checksum file",
            ReferenceKind::Metadata => "object metadata",
        }
    }
}

/// Resolve `archive` (a catalog id or an object key) against the servers
/// of `source`.
pub async fn locate(source: &dyn ServerSource, catalog: &Arc<Catalog>, archive: &str) -> Result<Located, RestoreError> {
    let archive = archive.trim();
    if archive.is_empty() || archive.ends_with('/') {
        return Err(RestoreError::BadName(archive.to_string()));
    }
    let targets = match source.servers(Purpose::Read).await {
        Ok(t) => t,
        Err(SourceError::NoServers) => return Err(RestoreError::NoServers),
        Err(e) => return Err(RestoreError::Source(e.to_string())),
    };
    let server_of = |row: &ArchiveRow| targets.iter().find(|t| t.location == row.location()).cloned();
    if let Ok(id) = archive.parse::<i64>() {
        let cat = catalog.clone();
        let row = super::blocking(move || cat.archive(id))
            .await?
            .ok_or(RestoreError::UnknownId(id))?;
        let server = server_of(&row);
        return from_row(server, row);
    }
    let cat = catalog.clone();
    let key = archive.to_string();
    if let Some(row) = super::blocking(move || cat.archive_by_key(&key)).await?
        && let Some(server) = server_of(&row)
        && row.status != ArchiveStatus::Failed
    {
        return from_row(Some(server), row);
    }
    search(&targets, archive).await
}

fn from_row(server: Option<Target>, row: ArchiveRow) -> Result<Located, RestoreError> {
    if matches!(row.status, ArchiveStatus::Failed | ArchiveStatus::Uploading) {
        return Err(RestoreError::NotStored {
            id: row.id,
            status: row.status,
        });
    }
    let Some(server) = server else {
        return Err(RestoreError::ServerNotConfigured {
            id: row.id,
            location: row.location().to_string(),
        });
    };
    if row.status != ArchiveStatus::Complete {
        tracing::warn!(id = row.id, status = %row.status, "The catalog marks this archive {}; trying anyway.", row.status);
    }
    let store = server.store()?;
    Ok(Located {
        server,
        store,
        key: row.key.clone(),
        size: (row.size_bytes > 0).then_some(row.size_bytes),
        row: Some(row),
        metadata: BTreeMap::new(),
    })
}

/// Ask each server, in order, for the key.
async fn search(targets: &[Target], key: &str) -> Result<Located, RestoreError> {
    let mut tried = Vec::new();
    for server in targets {
        let store = match server.store() {
            Ok(s) => s,
            Err(e) => {
                tried.push(e.to_string());
                continue;
            }
        };
        match with_retries(RETRIES, || store.head(key)).await {
            Ok(Some(info)) => {
                tracing::info!(server = server.id, key, "Found the archive.");
                return Ok(Located {
                    server: server.clone(),
                    store,
                    key: key.to_string(),
                    row: None,
                    size: Some(info.size),
                    metadata: info.metadata,
                });
            }
            Ok(None) => tried.push(format!("server {}: no such object", server.id)),
            Err(e) => tried.push(e.to_string()),
        }
    }
    Err(RestoreError::NotFound {
        key: key.to_string(),
        tried: tried.join("; "),
    })
}

/// Every checksum recorded for the archive: the catalog's, the sidecar's
/// and a `sha256` metadata field. A download must match all of them. The
/// second value lists problems met while fetching them.
pub async fn references(located: &Located) -> (Vec<Reference>, Vec<String>) {
    let mut refs = Vec::new();
    let mut warnings = Vec::new();
    if let Some(sha) = located.row.as_ref().and_then(|r| r.sha256.clone()) {
        refs.push(Reference {
            source: ReferenceKind::Catalog,
            sha256: sha.to_ascii_lowercase(),
        });
    }
    if let Some(sha) = located.metadata.get("sha256").and_then(|s| storage::parse_sidecar(s)) {
        refs.push(Reference {
            source: ReferenceKind::Metadata,
            sha256: sha,
        });
    }
    match with_retries(RETRIES, || storage::read_sidecar(located.store.as_ref(), &located.key)).await {
        Ok(Some(sha)) => refs.push(Reference {
            source: ReferenceKind::Sidecar,
            sha256: sha,
        }),
        Ok(None) => {}
        Err(e) => warnings.push(format!(
            "could not read the checksum file {}: {e}",
            storage::sidecar_key(&located.key)
        )),
    }
    (refs, warnings)
}
