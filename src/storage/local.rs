//! A directory that behaves like a bucket: the same key layout, multipart
//! uploads staged under `.sitebackup-uploads/` and published with one atomic
//! rename on completion, metadata kept under `.sitebackup-meta/`.
//!
//! The directory itself must exist: it is never created, so an unmounted
//! disk or NAS shows as [`StorageError::DirectoryMissing`] (and the backup
//! fails over) instead of silently filling the root file system. Only
//! subdirectories are created, `0700`, and every file `0600`
//! ([`crate::private`]): archives hold database dumps.

use super::{
    CompletedPart, ErrorClass, ObjectInfo, ObjectRead, ObjectStore, PendingUpload, StorageError, StorageResult,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const UPLOADS: &str = ".sitebackup-uploads";
const META: &str = ".sitebackup-meta";

pub struct LocalStore {
    name: String,
    root: PathBuf,
}

static UPLOAD_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalStore {
    pub fn new(id: u32, root: PathBuf) -> Self {
        Self {
            name: format!("server {id} (local:{})", root.display()),
            root,
        }
    }

    fn io_err(&self, operation: &'static str, e: io::Error) -> StorageError {
        let class = match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                return StorageError::NoSpace {
                    server: self.name.clone(),
                    detail: e.to_string(),
                };
            }
            io::ErrorKind::Interrupted | io::ErrorKind::TimedOut => ErrorClass::Retry,
            _ => ErrorClass::NextServer,
        };
        StorageError::Other {
            server: self.name.clone(),
            operation,
            detail: e.to_string(),
            class,
        }
    }

    /// The file for `key`, refusing keys that could escape the root.
    fn object_path(&self, key: &str) -> StorageResult<PathBuf> {
        let rel = Path::new(key);
        let ok = !key.is_empty()
            && rel.components().all(|c| matches!(c, Component::Normal(_)))
            && !key.starts_with(".sitebackup-");
        if !ok {
            return Err(StorageError::Other {
                server: self.name.clone(),
                operation: "resolve key",
                detail: format!("invalid object key {key:?}"),
                class: ErrorClass::Fatal,
            });
        }
        Ok(self.root.join(rel))
    }

    fn upload_dir(&self, upload_id: &str) -> StorageResult<PathBuf> {
        if upload_id.is_empty() || !upload_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(StorageError::Other {
                server: self.name.clone(),
                operation: "resolve upload",
                detail: format!("invalid upload id {upload_id:?}"),
                class: ErrorClass::Fatal,
            });
        }
        Ok(self.root.join(UPLOADS).join(upload_id))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root.join(META).join(format!("{key}.json"))
    }

    /// Run `f` on a blocking thread, once the root is known to exist (see
    /// the module docs): a missing root is never created, and never reads
    /// as an empty bucket.
    async fn blocking<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> StorageResult<T> {
        let root = self.root.clone();
        let run = move || {
            if !root.is_dir() {
                return Ok(None);
            }
            f().map(Some)
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(Ok(Some(v))) => Ok(v),
            Ok(Ok(None)) => Err(self.missing()),
            Ok(Err(e)) => Err(self.io_err(operation, e)),
            Err(e) => Err(self.io_err(operation, io::Error::other(e))),
        }
    }

    fn missing(&self) -> StorageError {
        StorageError::DirectoryMissing {
            server: self.name.clone(),
            path: self.root.clone(),
        }
    }
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = crate::private::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, _prefix: &str) -> StorageResult<()> {
        let root = self.root.clone();
        self.blocking("check", move || {
            let probe = root.join(format!(".sitebackup-probe-{}", std::process::id()));
            write_synced(&probe, b"ok")?;
            std::fs::remove_file(&probe)
        })
        .await
    }

    async fn create_multipart(&self, key: &str, metadata: &BTreeMap<String, String>) -> StorageResult<String> {
        self.object_path(key)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!(
            "{nanos:x}-{}-{}",
            std::process::id(),
            UPLOAD_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.upload_dir(&id)?;
        let info = serde_json::json!({ "key": key, "metadata": metadata }).to_string();
        self.blocking("initiate upload", move || {
            crate::private::create_dir_all(&dir)?;
            write_synced(&dir.join("upload.json"), info.as_bytes())
        })
        .await?;
        Ok(id)
    }

    async fn upload_part(
        &self,
        _key: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> StorageResult<CompletedPart> {
        let dir = self.upload_dir(upload_id)?;
        let etag = format!("{part_number}-{}", data.len());
        self.blocking("upload part", move || {
            if !dir.is_dir() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such upload"));
            }
            let tmp = dir.join(format!("part-{part_number:05}.tmp"));
            write_synced(&tmp, &data)?;
            std::fs::rename(&tmp, dir.join(format!("part-{part_number:05}")))
        })
        .await?;
        Ok(CompletedPart {
            part_number,
            etag,
            checksum_crc32c: None,
        })
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> StorageResult<()> {
        let target = self.object_path(key)?;
        let dir = self.upload_dir(upload_id)?;
        let meta_path = self.meta_path(key);
        self.blocking("complete upload", move || {
            let info = std::fs::read(dir.join("upload.json"))?;
            let assembled = dir.join("object");
            let mut out = crate::private::create(&assembled)?;
            for p in &parts {
                let mut part = std::fs::File::open(dir.join(format!("part-{:05}", p.part_number)))?;
                io::copy(&mut part, &mut out)?;
            }
            out.sync_all()?;
            drop(out);
            let parent = target.parent().unwrap_or(Path::new("/")).to_path_buf();
            crate::private::create_dir_all(&parent)?;
            if let Some(meta_parent) = meta_path.parent() {
                crate::private::create_dir_all(meta_parent)?;
            }
            write_synced(&meta_path, &info)?;
            std::fs::rename(&assembled, &target)?;
            sync_dir(&parent)?;
            std::fs::remove_dir_all(&dir)
        })
        .await
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> StorageResult<()> {
        let dir = self.upload_dir(upload_id)?;
        self.blocking("abort upload", move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        })
        .await
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::ALL
    }

    async fn list_multipart(&self, prefix: &str) -> StorageResult<Vec<PendingUpload>> {
        let dir = self.root.join(UPLOADS);
        let prefix = prefix.to_string();
        self.blocking("list uploads", move || {
            let mut out = Vec::new();
            let entries = match std::fs::read_dir(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                other => other?,
            };
            for entry in entries {
                let entry = entry?;
                let info_path = entry.path().join("upload.json");
                let Ok(info) = std::fs::read(&info_path) else {
                    continue;
                };
                let initiated = std::fs::metadata(&info_path)
                    .and_then(|m| m.modified())
                    .ok()
                    .map(chrono::DateTime::<chrono::Utc>::from);
                let info: serde_json::Value = serde_json::from_slice(&info).map_err(io::Error::other)?;
                let key = info["key"].as_str().unwrap_or_default().to_string();
                if key.starts_with(&prefix) {
                    out.push(PendingUpload {
                        key,
                        upload_id: entry.file_name().to_string_lossy().into_owned(),
                        initiated,
                    });
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn put_small(&self, key: &str, data: Bytes) -> StorageResult<()> {
        let target = self.object_path(key)?;
        self.blocking("put", move || {
            let parent = target.parent().unwrap_or(Path::new("/")).to_path_buf();
            crate::private::create_dir_all(&parent)?;
            let tmp = parent.join(format!(".tmp-{}", std::process::id()));
            write_synced(&tmp, &data)?;
            std::fs::rename(&tmp, &target)
        })
        .await
    }

    async fn get_from(&self, key: &str, offset: u64, version: Option<&str>) -> StorageResult<ObjectRead> {
        use std::os::unix::fs::MetadataExt;
        use tokio::io::AsyncSeekExt;
        let path = self.object_path(key)?;
        if !tokio::fs::metadata(&self.root).await.is_ok_and(|m| m.is_dir()) {
            return Err(self.missing());
        }
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StorageError::NotFound {
                    server: self.name.clone(),
                    key: key.to_string(),
                }
            } else {
                self.io_err("get", e)
            }
        })?;
        let meta = file.metadata().await.map_err(|e| self.io_err("get", e))?;
        // Objects are published by rename: another version is another
        // inode (or at least another size or mtime).
        let tag = format!(
            "{:x}-{:x}-{}.{}",
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        let changed = |detail: String| StorageError::Changed {
            server: self.name.clone(),
            key: key.to_string(),
            detail,
        };
        if let Some(v) = version
            && v != tag
        {
            return Err(changed(format!("version {v} became {tag}")));
        }
        if offset > meta.len() {
            return Err(changed(format!("it no longer has a byte {offset}")));
        }
        file.seek(io::SeekFrom::Start(offset))
            .await
            .map_err(|e| self.io_err("get", e))?;
        let name = self.name.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map(move |r| {
                r.map_err(|e| StorageError::Other {
                    server: name.clone(),
                    operation: "get",
                    detail: e.to_string(),
                    class: ErrorClass::Retry,
                })
            })
            .boxed();
        Ok(ObjectRead {
            stream,
            size: Some(meta.len()),
            version: Some(tag),
        })
    }

    async fn head(&self, key: &str) -> StorageResult<Option<ObjectInfo>> {
        let path = self.object_path(key)?;
        let meta_path = self.meta_path(key);
        let key = key.to_string();
        self.blocking("head", move || {
            let size = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m.len(),
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let metadata = std::fs::read(&meta_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| serde_json::from_value::<BTreeMap<String, String>>(v["metadata"].clone()).ok())
                .unwrap_or_default();
            Ok(Some(ObjectInfo { key, size, metadata }))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        self.blocking("list", move || {
            let mut out = Vec::new();
            for entry in walkdir::WalkDir::new(&root).sort_by_file_name() {
                let entry = entry.map_err(io::Error::other)?;
                if !entry.file_type().is_file() {
                    continue;
                }
                let Ok(rel) = entry.path().strip_prefix(&root) else {
                    continue;
                };
                let Some(key) = rel.to_str() else { continue };
                if key.starts_with(".sitebackup-") || key.contains("/.tmp-") || !key.starts_with(&prefix) {
                    continue;
                }
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: entry.metadata().map_err(io::Error::other)?.len(),
                    metadata: BTreeMap::new(),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        let path = self.object_path(key)?;
        let meta_path = self.meta_path(key);
        self.blocking("delete", move || {
            for p in [&path, &meta_path] {
                match std::fs::remove_file(p) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        })
        .await
    }
}
