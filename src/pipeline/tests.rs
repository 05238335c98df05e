//! The retry policy of a backup, driven through [`BackupJob`] against
//! in-process stores that inject faults and count calls ([`FaultStore`]
//! around a real local directory store), on a paused clock: the backoff
//! sleeps advance tokio's time, not the wall clock's.
//!
//! What is guarded: a part is tried `upload.part_retries + 1` times on a
//! transient error (5xx, 429), with a pause that doubles from 250 ms; an
//! error that is not transient fails the part at once; initiating an
//! upload is never retried (a retry after a lost reply would open a second
//! upload whose id nobody learns).

use super::*;
use crate::catalog::Catalog;
use crate::config::{RawConfig, ServerConfig};
use crate::storage::{ErrorClass, ObjectInfo, ObjectRead, PendingUpload, SourceError, StorageResult};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Mutex;
use tokio::time::Instant as Clock;

/// What a faulty call answers.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// An HTTP status (its class follows [`StorageError::class`]).
    Http(u16),
    /// An error no server could fix (class [`ErrorClass::Fatal`]).
    Fatal,
}

/// A store that forwards to `inner`, except that the next `times` calls of
/// an operation fail as told. Every call is recorded with the (paused)
/// time it was made.
struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    faults: Mutex<Vec<(&'static str, Fault, u32)>>,
    calls: Mutex<Vec<(&'static str, Clock)>>,
}

impl FaultStore {
    fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            faults: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        })
    }

    /// The next `times` calls of `op` fail with `fault`.
    fn fail(&self, op: &'static str, fault: Fault, times: u32) {
        self.faults.lock().unwrap().push((op, fault, times));
    }

    /// When `op` was called, in order.
    fn calls(&self, op: &str) -> Vec<Clock> {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|(o, _)| *o == op).map(|(_, t)| *t).collect()
    }

    fn hit(&self, op: &'static str) -> StorageResult<()> {
        self.calls.lock().unwrap().push((op, Clock::now()));
        let mut faults = self.faults.lock().unwrap();
        let Some((_, fault, times)) = faults.iter_mut().find(|(o, _, n)| *o == op && *n > 0) else {
            return Ok(());
        };
        *times -= 1;
        let server = self.inner.name().to_string();
        Err(match *fault {
            Fault::Http(status) => StorageError::Http {
                server,
                operation: op,
                status,
                code: format!("Injected{status}"),
            },
            Fault::Fatal => StorageError::Other {
                server,
                operation: op,
                detail: "injected".into(),
                class: ErrorClass::Fatal,
            },
        })
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn check(&self, prefix: &str) -> StorageResult<()> {
        self.hit("check")?;
        self.inner.check(prefix).await
    }
    async fn create_multipart(&self, key: &str, metadata: &BTreeMap<String, String>) -> StorageResult<String> {
        self.hit("create_multipart")?;
        self.inner.create_multipart(key, metadata).await
    }
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> StorageResult<CompletedPart> {
        self.hit("upload_part")?;
        self.inner.upload_part(key, upload_id, part_number, data).await
    }
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> StorageResult<()> {
        self.hit("complete_multipart")?;
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StorageResult<()> {
        self.hit("abort_multipart")?;
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_multipart(&self, prefix: &str) -> StorageResult<Vec<PendingUpload>> {
        self.hit("list_multipart")?;
        self.inner.list_multipart(prefix).await
    }
    async fn put_small(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.hit("put_small")?;
        self.inner.put_small(key, data).await
    }
    async fn get_from(&self, key: &str, offset: u64, version: Option<&str>) -> StorageResult<ObjectRead> {
        self.hit("get_from")?;
        self.inner.get_from(key, offset, version).await
    }
    async fn head(&self, key: &str) -> StorageResult<Option<ObjectInfo>> {
        self.hit("head")?;
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.hit("list")?;
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.hit("delete")?;
        self.inner.delete(key).await
    }
}

/// A fixed list of servers.
struct Fixed(Vec<Target>);

#[async_trait]
impl ServerSource for Fixed {
    fn placement(&self) -> Option<crate::layout::Placement> {
        Some(crate::layout::Placement::Standalone {
            host_id: "retry-host".into(),
        })
    }

    async fn servers(&self, _purpose: Purpose) -> Result<Vec<Target>, SourceError> {
        Ok(self.0.clone())
    }
}

/// A site of a few small files, `servers` local directory servers behind
/// fault stores, and a catalog.
struct Fixture {
    _dir: tempfile::TempDir,
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    install: Arc<crate::install::Installation>,
    stores: Vec<Arc<FaultStore>>,
}

fn config(dir: &Path, servers: u32, retries: u32) -> Config {
    let mut text = format!(
        "host_id = \"retry-host\"\nstate_dir = \"{}\"\n\n[upload]\npart_retries = {retries}\nzstd_threads = 0\n\n",
        dir.join("state").display()
    );
    for id in 1..=servers {
        std::fs::create_dir_all(dir.join(format!("server{id}"))).unwrap();
        text.push_str(&format!(
            "[[servers]]\nid = {id}\ntype = \"local\"\npath = \"{}\"\n\n",
            dir.join(format!("server{id}")).display()
        ));
    }
    text.push_str(&format!(
        "[[sites]]\nname = \"blog\"\npath = \"{}\"\n",
        dir.join("site").display()
    ));
    let raw: RawConfig = ::config::Config::builder()
        .add_source(::config::File::from_str(&text, ::config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .unwrap();
    crate::config::build(raw, &BTreeMap::new()).unwrap()
}

impl Fixture {
    fn new(servers: u32, retries: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("wp-content")).unwrap();
        std::fs::write(site.join("index.php"), b"<?php\n").unwrap();
        std::fs::write(site.join("wp-content/data.bin"), vec![7u8; 20_000]).unwrap();
        let config = config(dir.path(), servers, retries);
        let catalog = Arc::new(Catalog::open(&config.state_dir).unwrap());
        let install = Arc::new(crate::install::load_or_create(&config.state_dir).unwrap());
        let stores = config
            .servers
            .iter()
            .map(|s| FaultStore::new(Target::from_config(s, &config.network, 0).store().unwrap()))
            .collect();
        Self {
            _dir: dir,
            config: Arc::new(config),
            catalog,
            install,
            stores,
        }
    }

    fn store(&self, id: u32) -> &FaultStore {
        &self.stores[id as usize - 1]
    }

    async fn run(&self) -> BackupReport {
        let targets = self
            .config
            .servers
            .iter()
            .zip(&self.stores)
            .map(|(s, f): (&ServerConfig, _)| Target::with_store(s, 0, f.clone()))
            .collect();
        BackupJob {
            config: self.config.clone(),
            site: self.config.sites[0].clone(),
            catalog: self.catalog.clone(),
            source: Arc::new(Fixed(targets)),
            install: self.install.clone(),
            trigger: "test",
            progress: Arc::new(Progress::default()),
            cancel: CancellationToken::new(),
        }
        .run()
        .await
    }
}

/// The pauses between consecutive calls.
fn gaps(calls: &[Clock]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1] - w[0]).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_part_is_tried_retries_plus_one_times_with_a_doubling_pause() {
    for retries in [0, 1, 3, 5] {
        let f = Fixture::new(2, retries);
        f.store(1).fail("upload_part", Fault::Http(503), u32::MAX);
        let report = f.run().await;
        assert_eq!(
            report.archive.as_ref().map(|a| a.server_id),
            Some(2),
            "retries = {retries}: {report:?}"
        );
        let tries = f.store(1).calls("upload_part");
        assert_eq!(tries.len() as u32, retries + 1, "retries = {retries}");
        let expected: Vec<Duration> = [250, 500, 1000, 2000, 4000]
            .into_iter()
            .take(retries as usize)
            .map(ms)
            .collect();
        assert_eq!(gaps(&tries), expected, "retries = {retries}");
        // One upload was opened on server 1, and aborted.
        assert_eq!(f.store(1).calls("create_multipart").len(), 1);
        assert_eq!(f.store(1).calls("abort_multipart").len(), 1);
        assert_eq!(f.store(2).calls("upload_part").len(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_is_retried_on_the_same_server() {
    let f = Fixture::new(1, 3);
    f.store(1).fail("upload_part", Fault::Http(429), 2);
    let started = Clock::now();
    let report = f.run().await;
    assert_eq!(report.outcome, RunOutcome::Success, "{report:?}");
    assert_eq!(report.archive.as_ref().map(|a| a.server_id), Some(1));
    let tries = f.store(1).calls("upload_part");
    assert_eq!(gaps(&tries), [ms(250), ms(500)]);
    assert_eq!(f.store(1).calls("abort_multipart").len(), 0);
    // The pauses were taken on tokio's clock.
    assert!(started.elapsed() >= ms(750), "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn an_error_that_is_not_transient_fails_the_part_at_once() {
    // Refused by this server (403, 400): no retry, the next server at once.
    for status in [403, 400] {
        let f = Fixture::new(2, 3);
        f.store(1).fail("upload_part", Fault::Http(status), u32::MAX);
        let report = f.run().await;
        assert_eq!(
            report.archive.as_ref().map(|a| a.server_id),
            Some(2),
            "{status}: {report:?}"
        );
        let tries = f.store(1).calls("upload_part");
        assert_eq!(tries.len(), 1, "HTTP {status} was retried");
        let next = f.store(2).calls("create_multipart")[0];
        assert!(next - tries[0] < ms(250), "HTTP {status}: waited {:?}", next - tries[0]);
    }
    // Nothing any server could fix: the run fails without trying server 2.
    let f = Fixture::new(2, 3);
    f.store(1).fail("upload_part", Fault::Fatal, u32::MAX);
    let report = f.run().await;
    assert_eq!(report.outcome, RunOutcome::Failed, "{report:?}");
    assert_eq!(f.store(1).calls("upload_part").len(), 1);
    assert!(f.store(2).calls("create_multipart").is_empty(), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn initiating_an_upload_is_never_retried() {
    let f = Fixture::new(2, 3);
    // Even a transient error: the reply may have been lost after the server
    // opened an upload.
    f.store(1).fail("create_multipart", Fault::Http(503), u32::MAX);
    let report = f.run().await;
    assert_eq!(report.archive.as_ref().map(|a| a.server_id), Some(2), "{report:?}");
    assert_eq!(f.store(1).calls("create_multipart").len(), 1);
    assert!(f.store(1).calls("upload_part").is_empty());
    assert_eq!(report.attempts.len(), 2, "{report:?}");
}
