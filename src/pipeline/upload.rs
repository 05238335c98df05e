//! One attempt: stream the archive to one server as a multipart upload,
//! and record it. On any failure the upload is aborted and the row marked
//! `failed` before the attempt returns.

use super::*;

/// Why one server's attempt failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("archive stream failed: {0}")]
    Source(std::io::Error),
    #[error("catalog: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(
        "Not enough space on {server}: usage {usage} + {sent} bytes uploaded would exceed the limit of {limit} bytes"
    )]
    LimitCrossed {
        server: String,
        usage: u64,
        sent: u64,
        limit: u64,
    },
    #[error("cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
    /// The prefix belongs to another installation: no server may take
    /// this archive until the operator decides.
    #[error("{0}")]
    ForeignOwner(String),
}

impl AttemptError {
    /// Does trying the next server make sense?
    pub(super) fn next_server(&self) -> bool {
        match self {
            AttemptError::Storage(e) => fail_over_after(e.class()),
            AttemptError::LimitCrossed { .. } => true,
            AttemptError::Source(_)
            | AttemptError::Catalog(_)
            | AttemptError::Cancelled
            | AttemptError::Internal(_)
            | AttemptError::ForeignOwner(_) => false,
        }
    }
}

impl BackupJob {
    /// Stream the archive to one server. On any error the multipart upload
    /// is aborted and the row marked failed before returning.
    pub(super) async fn attempt_upload(
        &self,
        run_id: i64,
        server: &Target,
        store: Arc<dyn ObjectStore>,
        estimate: u64,
        database: Option<DatabaseEntry>,
    ) -> Result<(ArchiveDone, archive::ArchiveStats), AttemptError> {
        let now = Utc::now();
        let key = self.unique_key(now).await?;
        let created_at = crate::catalog::fmt_time(now);
        let cat = self.catalog.clone();
        let (site, location, k, c) = (
            self.site.name.clone(),
            server.location.clone(),
            key.clone(),
            created_at.clone(),
        );
        let sid = server.id;
        let row_id = blocking_attempt(move || {
            cat.insert_uploading(&NewArchive {
                run_id,
                site: &site,
                server_id: sid,
                location: &location,
                key: &k,
                created_at: &c,
            })
        })
        .await?;

        let mut upload_id = None;
        let result = self
            .stream_to(
                server,
                &store,
                &key,
                &created_at,
                estimate,
                row_id,
                database,
                &mut upload_id,
            )
            .await;
        match result {
            Ok(stored) => {
                let mut stats = stored.stats;
                stats
                    .warnings
                    .extend(stored.suspicion.as_ref().map(|s| s.message.clone()));
                if let Some(e) = stored.unrecorded {
                    stats.warnings.push(format!(
                        "{key} is stored on {server}, but the catalog could not record it ({e}); \
                         it stays stored, and the next daemon start or `sitebackup reconcile` records it"
                    ));
                }
                Ok((
                    ArchiveDone {
                        id: row_id,
                        server_id: server.id,
                        server: server.info(),
                        key,
                        size_bytes: stored.size,
                        sha256: stored.sha256,
                        suspect: stored.suspicion.as_ref().map(|s| s.cause),
                        location: server.location.clone(),
                    },
                    stats,
                ))
            }
            Err(e) => {
                // Nothing was completed (a completion whose reply was lost
                // but whose object is whole counts as completed, above):
                // abort the upload, and drop the sidecar written for it
                // unless an object is there after all. A whole object is
                // never deleted here.
                if let Some(id) = &upload_id {
                    abort_with_retries(store.as_ref(), &key, id).await;
                    if let Ok(None) = store.head(&key).await {
                        let _ = store.delete(&storage::sidecar_key(&key)).await;
                    }
                }
                let cat = self.catalog.clone();
                let msg = e.to_string();
                let _ = blocking_attempt(move || cat.mark_failed(row_id, &msg)).await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn stream_to(
        &self,
        server: &Target,
        store: &Arc<dyn ObjectStore>,
        key: &str,
        created_at: &str,
        estimate: u64,
        row_id: i64,
        database: Option<DatabaseEntry>,
        upload_id_out: &mut Option<String>,
    ) -> Result<Stored, AttemptError> {
        self.claim_prefix(server, store.as_ref()).await?;
        let upload = &self.config.upload;
        let metadata: BTreeMap<String, String> = [
            ("site", self.site.name.clone()),
            ("host", self.config.host_id.clone()),
            (install::METADATA_KEY, self.install.install_id.clone()),
            ("tool-version", format!("sitebackup/{}", env!("CARGO_PKG_VERSION"))),
            ("created-at", created_at.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // Not retried: a retry after a lost reply would open a second upload
        // whose id we never learn. A failure here moves to the next server.
        let upload_id = store.create_multipart(key, &metadata).await?;
        *upload_id_out = Some(upload_id.clone());
        let cat = self.catalog.clone();
        let uid = upload_id.clone();
        blocking_attempt(move || cat.set_upload_id(row_id, &uid)).await?;

        self.progress.read.store(0, Ordering::Relaxed);
        self.progress.uploaded.store(0, Ordering::Relaxed);
        let part_size = part_size_for(estimate, upload.part_size);
        let (tx, mut rx) = mpsc::channel::<Bytes>(upload.queue_depth);
        let spec = ArchiveSpec {
            site: self.site.name.clone(),
            host_id: self.config.host_id.clone(),
            root: self.site.path.clone(),
            exclude: self.site.exclude_set.clone(),
            created_at: created_at.to_string(),
            zstd_level: upload.zstd_level,
            zstd_threads: upload.zstd_threads,
            database,
        };
        let progress = self.progress.clone();
        let producer = tokio::task::spawn_blocking(move || {
            let sink = HashingWriter::new(PartSink::new(tx, part_size as usize));
            // `read` moves live: the progress bar and the daemon's
            // heartbeat watch it.
            let (stats, sink) = archive::write_archive(&spec, sink, &progress.read)?;
            let (sink, sha, size) = sink.finish();
            sink.finish()?;
            Ok::<_, std::io::Error>((stats, sha, size))
        });

        let (usage, limit) = (server.usage_bytes, server.limit_bytes);
        let mut in_flight: JoinSet<Result<CompletedPart, StorageError>> = JoinSet::new();
        let mut parts: Vec<CompletedPart> = Vec::new();
        let mut queued_bytes: u64 = 0;
        let mut next_part: u32 = 1;
        let store_name = store.name().to_string();
        let outcome: Result<(), AttemptError> = async {
            let mut channel_open = true;
            while channel_open || !in_flight.is_empty() {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Err(AttemptError::Cancelled),
                    Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                        let part = done.map_err(|e| AttemptError::Internal(e.to_string()))??;
                        parts.push(part);
                    }
                    maybe = rx.recv(), if channel_open && in_flight.len() < upload.concurrency => {
                        match maybe {
                            None => channel_open = false,
                            Some(data) => {
                                queued_bytes += data.len() as u64;
                                if usage + queued_bytes > limit {
                                    return Err(AttemptError::LimitCrossed {
                                        server: store_name.clone(),
                                        usage,
                                        sent: queued_bytes,
                                        limit,
                                    });
                                }
                                let part_number = next_part;
                                next_part += 1;
                                in_flight.spawn(upload_part_task(
                                    store.clone(),
                                    key.to_string(),
                                    upload_id.clone(),
                                    part_number,
                                    data,
                                    upload.part_retries,
                                    self.progress.clone(),
                                ));
                            }
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
            drop(rx);
            let _ = producer.await;
            return Err(e);
        }
        let (stats, sha256, size) = producer
            .await
            .map_err(|e| AttemptError::Internal(e.to_string()))?
            .map_err(AttemptError::Source)?;
        parts.sort_by_key(|p| p.part_number);

        // Before completing: the row gets the final size and checksum
        // (synchronous=FULL), and the sidecar goes up, so that whatever
        // happens from here on, a whole object can be recognised as one.
        let cat = self.catalog.clone();
        let sha = sha256.clone();
        blocking_attempt(move || cat.record_checksum(row_id, size, &sha)).await?;
        let suspicion = self.mark_if_suspect(row_id, stats.files, size).await?;
        let sidecar = format!("{sha256}  {}\n", key.rsplit('/').next().unwrap_or(key));
        let sidecar_key = storage::sidecar_key(key);
        with_retries(upload.part_retries, || {
            store.put_small(&sidecar_key, Bytes::from(sidecar.clone()))
        })
        .await?;
        complete_or_find(store.as_ref(), key, &upload_id, &parts, size, upload.part_retries).await?;

        // The object is whole: only now is the row complete. If the catalog
        // cannot say so within a minute, the archive stays stored (no second
        // copy elsewhere) and the run ends with a warning.
        let unrecorded = record_complete(&self.catalog, row_id, size, &sha256).await.err();
        Ok(Stored {
            size,
            sha256,
            stats,
            suspicion,
            unrecorded,
        })
    }

    /// Write the owner marker under this installation's prefix on first
    /// use, and refuse a prefix that another installation owns.
    async fn claim_prefix(&self, server: &Target, store: &dyn ObjectStore) -> Result<(), AttemptError> {
        let owner = self.config.owner();
        let cat = self.catalog.clone();
        let adopted = blocking_attempt(move || cat.adopted_installs()).await?;
        let marker = storage::read_marker(store, &owner).await?;
        match install::Ownership::of(marker.as_ref(), &self.install, &adopted) {
            install::Ownership::Ours => Ok(()),
            install::Ownership::Unclaimed => {
                let (key, body) = (owner.marker_key(), Bytes::from(self.install.marker().to_bytes()));
                with_retries(self.config.upload.part_retries, || store.put_small(&key, body.clone())).await?;
                info!(server = server.id, prefix = %owner.prefix(), "Claimed the prefix for this installation.");
                Ok(())
            }
            install::Ownership::Foreign(m) => Err(AttemptError::ForeignOwner(install::foreign_owner_message(
                &owner.prefix(),
                &server.name,
                &m,
                &self.install,
            ))),
        }
    }

    /// The archive's key ([`ArchiveKey`]), with `-N` added in the rare
    /// case that key is already taken.
    async fn unique_key(&self, now: DateTime<Utc>) -> Result<String, AttemptError> {
        // Where keys go (`{host_id}/…`, or `{node_uuid}/{site_uuid}/…` in node
        // mode) is the source's to say: a lease names the site's uuid.
        let placement = self
            .source
            .placement()
            .ok_or_else(|| AttemptError::Internal("the server source gave no key placement".into()))?;
        let base = ArchiveKey::new(placement, &self.site.name, now);
        for n in 0..100 {
            let candidate = base.clone().with_seq(n).to_string();
            let cat = self.catalog.clone();
            let c = candidate.clone();
            if !blocking_attempt(move || cat.key_exists(&c)).await? {
                return Ok(candidate);
            }
        }
        Err(AttemptError::Internal(format!("no free object key near {base}")))
    }
}

/// What a successful attempt stored.
struct Stored {
    size: u64,
    sha256: String,
    stats: archive::ArchiveStats,
    /// Set when the row was marked suspect.
    suspicion: Option<Suspicion>,
    /// Why the catalog could not mark the row complete, if it could not.
    unrecorded: Option<crate::catalog::CatalogError>,
}

/// Complete the multipart upload. When the request fails, the reply may
/// just have been lost: a HEAD that finds the object with the expected
/// size means it is complete, and the attempt succeeds without failing
/// over. Otherwise a transient error is retried and anything else fails
/// the attempt (the caller aborts the upload).
async fn complete_or_find(
    store: &dyn ObjectStore,
    key: &str,
    upload_id: &str,
    parts: &[CompletedPart],
    size: u64,
    retries: u32,
) -> Result<(), StorageError> {
    let mut attempt = 0;
    loop {
        let err = match store.complete_multipart(key, upload_id, parts.to_vec()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match with_retries(retries, || store.head(key)).await {
            Ok(Some(info)) if info.size == size => {
                warn!(
                    key,
                    "The reply to the upload's completion was lost, but the object is whole: keeping it."
                );
                return Ok(());
            }
            Ok(_) | Err(_) => {}
        }
        if err.class() != storage::ErrorClass::Retry || attempt >= retries {
            return Err(err);
        }
        attempt += 1;
        let delay = Duration::from_millis(250u64 << attempt.min(6));
        warn!(key, "Retrying the upload's completion in {delay:?} after: {err}");
        tokio::time::sleep(delay).await;
    }
}

/// How long a busy or locked catalog may delay recording a stored archive.
const RECORD_PATIENCE: Duration = Duration::from_secs(60);

/// Mark the row complete, retrying with backoff for up to a minute.
async fn record_complete(
    catalog: &Arc<crate::catalog::Catalog>,
    row_id: i64,
    size: u64,
    sha256: &str,
) -> Result<(), crate::catalog::CatalogError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let (cat, sha) = (catalog.clone(), sha256.to_string());
        let result = tokio::task::spawn_blocking(move || cat.mark_complete(row_id, size, &sha))
            .await
            .unwrap_or_else(|e| Err(crate::catalog::CatalogError::Internal(e.to_string())));
        match result {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() + delay < RECORD_PATIENCE => {
                warn!(
                    row_id,
                    "Could not mark the archive complete yet, retrying in {delay:?}: {e}"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Upload one part, retrying transient errors with exponential backoff.
async fn upload_part_task(
    store: Arc<dyn ObjectStore>,
    key: String,
    upload_id: String,
    part_number: u32,
    data: Bytes,
    retries: u32,
    progress: Arc<Progress>,
) -> Result<CompletedPart, StorageError> {
    let len = data.len() as u64;
    let part = with_retries(retries, || {
        store.upload_part(&key, &upload_id, part_number, data.clone())
    })
    .await?;
    progress.uploaded.fetch_add(len, Ordering::Relaxed);
    Ok(part)
}

async fn blocking_attempt<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::catalog::CatalogError> + Send + 'static,
) -> Result<T, AttemptError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(AttemptError::Internal(e.to_string())),
    }
}
