//! Shared helpers for integration tests: the rig started by
//! `scripts/test-env.sh` (Garage and s3s-fs on loopback), the real binary,
//! and independent cross-checks with `aws`, `zstd` and `tar`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub mod daemon;
mod fixtures;
pub mod http_proxy;
pub mod master;

mod throttle;
#[allow(unused_imports)] // not every test binary uses every fixture
pub use fixtures::*;
#[allow(unused_imports)]
pub use throttle::*;

/// Which S3 implementation a [`Rig`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    /// Garage: implements every call sitebackup uses.
    Garage,
    /// s3s-fs: objects as files; no ListMultipartUploads (501), ignores
    /// If-Match, answers AccessDenied to an abort of an unknown upload id,
    /// accepts any region.
    S3sFs,
}

/// One S3 server of the rig. Tests fail loudly (never skip) when it is not
/// running.
#[derive(Debug, Clone)]
pub struct Rig {
    pub kind: S3Kind,
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub buckets: Vec<String>,
    /// s3s-fs's data directory: where its open uploads can be seen.
    pub data_dir: Option<PathBuf>,
}

fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: integration tests need the test rig; run them with scripts/test.sh")
    })
}

/// Define tests that run once per S3 server of the rig: for each
/// `fn name(rig: &Rig)` listed, `garage::name` and `s3s_fs::name`.
#[macro_export]
macro_rules! per_server {
    ($($name:ident),* $(,)?) => {
        mod garage {
            $( #[test] fn $name() { super::$name(&super::common::Rig::garage()) } )*
        }
        mod s3s_fs {
            $( #[test] fn $name() { super::$name(&super::common::Rig::s3s()) } )*
        }
    };
}

impl Rig {
    /// Garage, the rig's first S3 server.
    pub fn get() -> Self {
        Self::garage()
    }

    pub fn garage() -> Self {
        Self {
            kind: S3Kind::Garage,
            endpoint: need("SB_TEST_S3_ENDPOINT"),
            region: need("SB_TEST_S3_REGION"),
            access_key: need("SB_TEST_S3_ACCESS_KEY"),
            secret_key: need("SB_TEST_S3_SECRET_KEY"),
            buckets: need("SB_TEST_BUCKETS").split_whitespace().map(String::from).collect(),
            data_dir: None,
        }
    }

    pub fn s3s() -> Self {
        Self {
            kind: S3Kind::S3sFs,
            endpoint: need("SB_TEST_S3S_ENDPOINT"),
            region: need("SB_TEST_S3S_REGION"),
            access_key: need("SB_TEST_S3S_ACCESS_KEY"),
            secret_key: need("SB_TEST_S3S_SECRET_KEY"),
            buckets: need("SB_TEST_S3S_BUCKETS")
                .split_whitespace()
                .map(String::from)
                .collect(),
            data_dir: Some(PathBuf::from(need("SB_TEST_S3S_DATA_DIR"))),
        }
    }

    /// Every S3 server of the rig.
    pub fn all() -> Vec<Self> {
        vec![Self::garage(), Self::s3s()]
    }

    /// Whether the server implements ListMultipartUploads.
    pub fn lists_uploads(&self) -> bool {
        self.kind == S3Kind::Garage
    }

    /// The server as an S3 server config (path-style) on `bucket`.
    pub fn server_config(&self, id: u32, bucket: &str) -> sitebackup::config::ServerConfig {
        use sitebackup::config::{Endpoint, S3Server, Secret, ServerConfig, ServerKind};
        ServerConfig {
            id,
            storage_limit_bytes: 1_000_000_000,
            kind: ServerKind::S3(S3Server {
                endpoint: Endpoint::parse(&self.endpoint).unwrap(),
                region: self.region.clone(),
                bucket: bucket.to_string(),
                access_key: Secret::new(self.access_key.clone()),
                secret_key: Secret::new(self.secret_key.clone()),
                session_token: None,
                path_style: true,
            }),
        }
    }

    /// `host:port` without the scheme, as `servers` prints it.
    pub fn endpoint_display(&self) -> String {
        self.endpoint.trim_start_matches("http://").to_string()
    }

    /// Env vars for an S3 server N on bucket `bucket`.
    pub fn server_env(&self, n: u32, bucket: &str) -> Vec<(String, String)> {
        vec![
            (format!("S3_SERVER_{n}_ENDPOINT"), self.endpoint.clone()),
            (format!("S3_SERVER_{n}_REGION"), self.region.clone()),
            (format!("S3_SERVER_{n}_ACCESS_KEY"), self.access_key.clone()),
            (format!("S3_SERVER_{n}_SECRET_KEY"), self.secret_key.clone()),
            (format!("S3_SERVER_{n}_BUCKET"), bucket.to_string()),
        ]
    }

    /// Run `aws s3api ARGS` against the rig; returns parsed JSON (or Null).
    pub fn s3api(&self, args: &[&str]) -> serde_json::Value {
        let out = self.aws(&["s3api"], args);
        assert!(
            out.status.success(),
            "aws s3api {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.iter().all(|b| b.is_ascii_whitespace()) {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap()
        }
    }

    pub fn aws(&self, sub: &[&str], args: &[&str]) -> Output {
        let mut cmd = Command::new("aws");
        cmd.arg("--endpoint-url").arg(&self.endpoint).args(sub).args(args);
        cmd.env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", &self.region)
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("AWS_PROFILE");
        cmd.output().expect("run aws")
    }

    /// Keys under `prefix` in `bucket`, per `aws s3api list-objects-v2`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let v = self.s3api(&["list-objects-v2", "--bucket", bucket, "--prefix", prefix]);
        v["Contents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| (o["Key"].as_str().unwrap().to_string(), o["Size"].as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Open multipart uploads under `prefix`, per `aws s3api`.
    /// The keys under `prefix` other than its owner marker (which the first
    /// upload attempt under a prefix writes, see `sitebackup::install`).
    pub fn data_keys(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        self.keys(bucket, prefix)
            .into_iter()
            .filter(|(k, _)| !k.ends_with("/.sitebackup-owner"))
            .collect()
    }

    /// Keys of the open multipart uploads under `prefix`: per `aws s3api
    /// list-multipart-uploads` on Garage; on s3s-fs, which cannot list
    /// them, from the upload files in its data directory (one
    /// `.bucket-B.object-K.upload-ID.metadata.json` per open upload, names
    /// in unpadded URL-safe base64).
    pub fn pending_uploads(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let Some(data) = &self.data_dir else {
            let v = self.s3api(&["list-multipart-uploads", "--bucket", bucket, "--prefix", prefix]);
            return v["Uploads"]
                .as_array()
                .map(|a| a.iter().map(|u| u["Key"].as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
        };
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = format!(".bucket-{}.object-", b64.encode(bucket));
        let mut keys: Vec<String> = std::fs::read_dir(data)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().ok()?;
                let rest = name.strip_prefix(&head)?.strip_suffix(".metadata.json")?;
                let (key, _id) = rest.split_once(".upload-")?;
                String::from_utf8(b64.decode(key).ok()?).ok()
            })
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        keys
    }

    /// Download an object with `aws s3 cp` into `dest`.
    pub fn download(&self, bucket: &str, key: &str, dest: &Path) {
        let out = self.aws(
            &["s3", "cp"],
            &[&format!("s3://{bucket}/{key}"), dest.to_str().unwrap(), "--quiet"],
        );
        assert!(
            out.status.success(),
            "aws s3 cp failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Variables of the test process the binary must not inherit: its own
/// settings (`S3_SERVER_*`, `SITEBACKUP_*`) and the rig's (`SB_TEST_*`,
/// which hold the rig's credentials).
pub fn inherited_settings() -> Vec<String> {
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("S3_SERVER_") || k.starts_with("SITEBACKUP_") || k.starts_with("SB_TEST_"))
        .collect()
}

/// A private working area: config, state dir, a site tree and a unique
/// host id (so tests sharing a bucket never see each other's objects).
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub host_id: String,
    pub env: BTreeMap<String, String>,
}

impl Workspace {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host_id = format!(
            "t-{name}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        Self {
            dir,
            host_id,
            env: BTreeMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    pub fn set_env(&mut self, pairs: impl IntoIterator<Item = (String, String)>) {
        self.env.extend(pairs);
    }

    /// Write `config.toml` with this workspace's host id and state dir
    /// followed by `extra` TOML.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let path = self.path().join("config.toml");
        let text = format!(
            "host_id = \"{}\"\nstate_dir = \"{}\"\n\n[upload]\npart_size_mb = 5\n\n{extra}",
            self.host_id,
            self.state_dir().display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The real binary with this workspace's config and env only: the
    /// calling environment's settings are removed ([`inherited_settings`]).
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("sitebackup").unwrap();
        for k in inherited_settings() {
            cmd.env_remove(k);
        }
        cmd.current_dir(self.path());
        cmd.env("NO_COLOR", "1");
        cmd.arg("--config").arg(self.path().join("config.toml"));
        cmd.envs(&self.env);
        cmd
    }

    /// The same as [`Workspace::cmd`], as a `std::process::Command` for a
    /// child the test signals or kills.
    pub fn spawn_cmd(&self) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("sitebackup"));
        for k in inherited_settings() {
            cmd.env_remove(k);
        }
        cmd.current_dir(self.path());
        cmd.env("NO_COLOR", "1");
        cmd.arg("--config").arg(self.path().join("config.toml"));
        cmd.envs(&self.env);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    }

    /// Make a small site tree with a few kinds of entries; returns its path.
    pub fn make_site(&self, name: &str, random_bytes: usize) -> PathBuf {
        let root = self.path().join(name);
        std::fs::create_dir_all(root.join("wp-content/uploads/2024")).unwrap();
        std::fs::create_dir_all(root.join("wp-content/cache")).unwrap();
        std::fs::write(root.join("index.php"), b"<?php require 'wp-blog-header.php';\n").unwrap();
        std::fs::write(root.join("wp-content/cache/page.html"), b"cached").unwrap();
        std::fs::write(root.join("wp-content/uploads/2024/photo.bin"), random(random_bytes)).unwrap();
        std::os::unix::fs::symlink("index.php", root.join("default.php")).unwrap();
        root
    }
}

/// Deterministic pseudo-random bytes (incompressible).
pub fn random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E3779B97F4A7C15 ^ n as u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A shell pipeline that fails when any of its stages fails (`bash -c`
/// with `set -o pipefail`, so a `zstd` error is not hidden by `tar`).
pub fn pipeline(script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!("set -euo pipefail; {script}"));
    cmd
}

/// `zstd -dc FILE | tar -tf -`: entry names, with stock tools.
pub fn tar_listing(archive: &Path) -> Vec<String> {
    let out = pipeline(&format!("zstd -dc '{}' | tar -tf -", archive.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "zstd|tar failed: {}", stderr(&out));
    stdout(&out).lines().map(String::from).collect()
}

pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

/// A fault-injecting TCP proxy: forwards to `upstream`, and cuts every
/// connection once the client has sent more than `cut_after` bytes on it.
/// Lives until the test process exits.
pub fn cutting_proxy(upstream: &str, cut_after: u64) -> String {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut sent = 0u64;
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    sent += n as u64;
                    if sent > cut_after || s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_read.shutdown(Shutdown::Both);
                let _ = s_write.shutdown(Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(Shutdown::Both);
            });
        }
    });
    format!("http://{addr}")
}

/// The private MariaDB of the rig (`SB_TEST_MYSQL_*`), driven with the
/// stock `mariadb` client. Tests fail loudly when it is not running.
pub struct Db {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub socket: PathBuf,
}

impl Db {
    pub fn get() -> Self {
        Self {
            host: need("SB_TEST_MYSQL_HOST"),
            port: need("SB_TEST_MYSQL_PORT").parse().unwrap(),
            user: need("SB_TEST_MYSQL_USER"),
            password: need("SB_TEST_MYSQL_PASSWORD"),
            socket: PathBuf::from(need("SB_TEST_MYSQL_SOCKET")),
        }
    }

    /// Run SQL (as the rig's admin user, over TCP) in `database`; returns
    /// stdout (tab-separated, no column names). Panics on failure.
    pub fn sql(&self, database: Option<&str>, sql: &str) -> String {
        let out = self.try_sql(database, sql);
        assert!(out.status.success(), "mariadb {sql:?} failed: {}", stderr(&out));
        stdout(&out)
    }

    pub fn try_sql(&self, database: Option<&str>, sql: &str) -> Output {
        let mut cmd = Command::new("mariadb");
        cmd.args(["--no-defaults", "--protocol=TCP", "--batch", "--skip-column-names"])
            .arg(format!("--host={}", self.host))
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={}", self.user))
            .arg("--default-character-set=utf8mb4")
            .env("MYSQL_PWD", &self.password);
        if let Some(db) = database {
            cmd.arg(db);
        }
        cmd.arg("-e").arg(sql);
        cmd.output().expect("run mariadb")
    }

    /// A new, empty database with a name unique to this test; dropped when
    /// the guard goes out of scope.
    pub fn create(&self, prefix: &str) -> TestDb<'_> {
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.sql(None, &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"));
        TestDb { db: self, name }
    }

    /// `CHECKSUM TABLE` of each table, in order.
    pub fn checksums(&self, database: &str, tables: &[&str]) -> Vec<String> {
        tables
            .iter()
            .map(|t| {
                let out = self.sql(Some(database), &format!("CHECKSUM TABLE `{t}`"));
                out.split_whitespace().nth(1).unwrap().to_string()
            })
            .collect()
    }

    /// A `wp-config.php` in `site` pointing at this server over TCP.
    pub fn write_wp_config(&self, site: &Path, database: &str, password: &str) {
        let text = format!(
            "<?php\n\
             // define('DB_NAME', 'not_this_one');\n\
             define( 'DB_NAME', '{database}' );\n\
             define( 'DB_USER', '{}' );\n\
             define( 'DB_PASSWORD', '{password}' );\n\
             define( \"DB_HOST\", \"{}:{}\" );\n\
             $table_prefix = 'wp_';\n",
            self.user, self.host, self.port
        );
        std::fs::write(site.join("wp-config.php"), text).unwrap();
    }
}

/// A database that is dropped at the end of the test.
pub struct TestDb<'a> {
    pub db: &'a Db,
    pub name: String,
}

impl Drop for TestDb<'_> {
    fn drop(&mut self) {
        // Never panics: this may run while a failed test unwinds.
        let _ = self
            .db
            .try_sql(None, &format!("DROP DATABASE IF EXISTS `{}`", self.name));
    }
}

/// `zstd -dc FILE | tar -x -C DIR` with stock tools.
pub fn extract(archive: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let out = pipeline(&format!(
        "zstd -dc '{}' | tar -x -C '{}'",
        archive.display(),
        dir.display()
    ))
    .output()
    .unwrap();
    assert!(out.status.success(), "zstd|tar -x failed: {}", stderr(&out));
}

impl Rig {
    /// `aws` environment for shell pipelines (`pipeline("aws … | zstd …")`).
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
        ]
    }

    /// Upload a local file with `aws s3 cp` (replacing any object there).
    pub fn upload(&self, bucket: &str, key: &str, src: &Path) {
        let out = self.aws(
            &["s3", "cp"],
            &[src.to_str().unwrap(), &format!("s3://{bucket}/{key}"), "--quiet"],
        );
        assert!(
            out.status.success(),
            "aws s3 cp (upload) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `touch -h -d @SECS`: set an mtime (of a symlink itself, too).
pub fn set_mtime(path: &Path, secs: u64) {
    let status = Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{secs}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "touch {}", path.display());
}

/// A site tree for restore tests: nested dirs, modes 0640/0750, a symlink,
/// an empty file, a non-UTF-8 file name, an empty directory, and distinct
/// mtimes in the past on everything (directories last).
pub fn make_rich_site(parent: &Path, name: &str, random_bytes: usize) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let root = parent.join(name);
    std::fs::create_dir_all(root.join("wp-content/uploads/2024/12")).unwrap();
    std::fs::create_dir_all(root.join("wp-content/empty-dir")).unwrap();
    std::fs::write(root.join("index.php"), b"<?php require 'wp-blog-header.php';\n").unwrap();
    std::fs::write(root.join("wp-settings.php"), b"<?php // settings, mode 0640\n").unwrap();
    std::fs::write(root.join("wp-content/uploads/2024/12/photo.bin"), random(random_bytes)).unwrap();
    std::fs::write(root.join("wp-content/uploads/empty.txt"), b"").unwrap();
    std::fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"caf\xe9-latin1.html")),
        b"non-UTF-8 name",
    )
    .unwrap();
    std::os::unix::fs::symlink("wp-content/uploads/2024/12/photo.bin", root.join("latest.bin")).unwrap();
    std::fs::set_permissions(root.join("wp-settings.php"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(root.join("wp-content"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let mut secs = 1_600_000_000;
    for e in walkdir::WalkDir::new(&root).contents_first(true) {
        secs += 3_600;
        set_mtime(e.unwrap().path(), secs);
    }
    root
}

/// Names directly inside `dir`.
pub fn entries_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `list --json ARGS` through the real binary.
pub fn list_json(ws: &Workspace, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = ws.cmd().args(["--json", "list"]).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Env vars for a server N on a loopback port nothing listens on.
pub fn dead_server(n: u32) -> Vec<(String, String)> {
    vec![
        (format!("S3_SERVER_{n}_ENDPOINT"), "http://127.0.0.1:1".into()),
        (format!("S3_SERVER_{n}_REGION"), "garage".into()),
        (format!("S3_SERVER_{n}_ACCESS_KEY"), "GKdeadbeefdeadbeefdeadbeef".into()),
        (format!("S3_SERVER_{n}_SECRET_KEY"), "dead".into()),
        (format!("S3_SERVER_{n}_BUCKET"), "nowhere".into()),
    ]
}
