//! A real `sitebackup master serve` process on a free loopback port, its
//! admin CLI, and its HTTP API through `curl` (a client nobody here wrote).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Master {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub admin_token: String,
    child: Option<Child>,
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("sitebackup")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The value after `label` on a line of `text`.
fn value_after(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
}

impl Master {
    /// `master init` then `master serve`, ready to answer.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("master.toml"),
            format!(
                "[master_server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\nreconcile_interval_secs = 3600\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let out = Self::cli_in(dir.path(), &["master", "init"]);
        assert!(
            out.status.success(),
            "master init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let admin_token = value_after(&String::from_utf8_lossy(&out.stdout), "Super-admin token:");
        let mut master = Self {
            dir,
            url: format!("http://127.0.0.1:{port}"),
            admin_token,
            child: None,
        };
        master.serve();
        master
    }

    fn cli_in(dir: &Path, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("S3_SERVER_") || k.starts_with("SITEBACKUP_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--config")
            .arg(dir.join("master.toml"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Run an admin command of the master's CLI.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Self::cli_in(self.dir.path(), args)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Start `master serve` and wait until it answers.
    pub fn serve(&mut self) {
        let mut cmd = Command::new(bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("S3_SERVER_") || k.starts_with("SITEBACKUP_") {
                cmd.env_remove(k);
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("serve.log"))
            .unwrap();
        cmd.arg("--config")
            .arg(self.dir.path().join("master.toml"))
            .args(["master", "serve"])
            .env("SITEBACKUP_LOG", "stderr")
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, _) = self.api("GET", "/api/v1/openapi.json", None, None);
            if status == 200 {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(exit)) = child.try_wait()
            {
                panic!("master serve exited with {exit}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "master serve did not answer: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop `master serve` (SIGKILL: a master that is simply gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `master node add NAME`: (node_uuid, token).
    pub fn add_node(&self, name: &str) -> (String, String) {
        let out = self.cli(&["master", "node", "add", name]);
        assert!(
            out.status.success(),
            "node add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (value_after(&text, "node_uuid:"), value_after(&text, "token:"))
    }

    /// An HTTP request with `curl`; the admin token unless `token` is given.
    /// Returns (status, JSON body or Null).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .arg(format!("{}{path}", self.url))
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", token.unwrap_or(&self.admin_token)));
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(b.to_string());
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (json, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Create a provider from the seed's body with the rig's keys; returns its id.
    pub fn add_provider(&self, name: &str, endpoint: &str, bucket: &str, rig: &super::Rig, default: bool) -> i64 {
        let body = serde_json::json!({
            "name": name,
            "type": "s3",
            "endpoint": endpoint,
            "bucket": bucket,
            "region": rig.region,
            "access_key": rig.access_key,
            "secret_key": rig.secret_key,
            "storage_limit_gb": 1000,
            "is_default": default,
        });
        let (status, v) = self.api("POST", "/api/v1/storage/providers", Some(&body), None);
        assert_eq!(status, 201, "{v}");
        v["id"].as_i64().unwrap()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.stop();
    }
}
