//! A real `sitebackup master serve` on a free loopback port, its state in
//! a temporary directory, and an HTTP client for it.

use crate::common::{Rig, Workspace, stderr, stdout};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct Master {
    pub ws: Workspace,
    pub child: Option<Child>,
    pub port: u16,
    pub admin: String,
    pub log: PathBuf,
    pub client: Client,
    pub scheme: &'static str,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `f` until it returns `Some`, or panic after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Master {
    /// `master init` and `master serve` with `extra` TOML in `[master_server]`.
    pub fn start(name: &str) -> Master {
        Self::start_with(name, "", Vec::new())
    }

    pub fn start_with(name: &str, extra: &str, env: Vec<(String, String)>) -> Master {
        let mut ws = Workspace::new(name);
        ws.set_env(env);
        let port = free_port();
        let interval = if extra.contains("reconcile_interval_secs") {
            ""
        } else {
            "reconcile_interval_secs = 86400\n"
        };
        let config = format!(
            "[master_server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n{interval}{extra}\n",
            ws.state_dir().display()
        );
        std::fs::write(ws.path().join("config.toml"), config).unwrap();
        let out = ws.cmd().args(["master", "init"]).output().unwrap();
        assert!(out.status.success(), "init failed: {}", stderr(&out));
        let admin = stdout(&out)
            .lines()
            .find_map(|l| l.strip_prefix("Super-admin token: "))
            .expect("init prints the token")
            .to_string();
        let scheme = if extra.contains("tls_cert") { "https" } else { "http" };
        let mut m = Master {
            log: ws.path().join("serve.log"),
            ws,
            child: None,
            port,
            admin,
            client: Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            scheme,
        };
        m.spawn();
        m
    }

    /// Start `master serve` (again), logging at debug level into `log`.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.ws.spawn_cmd();
        cmd.args(["-v", "master", "serve"]).stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().unwrap());
        if self.scheme == "http" {
            let url = self.url("/api/v1/openapi.json");
            wait_for(30, "master serve to answer", || {
                self.client.get(&url).send().ok().filter(|r| r.status().is_success())
            });
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// A request with `token`; returns status and JSON body (Null if none).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, value)
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call(method, path, Some(&self.admin.clone()), body)
    }

    /// `master node add NAME`: (node_uuid, token).
    pub fn add_node(&self, name: &str) -> (String, String) {
        let out = self.ws.cmd().args(["master", "node", "add", name]).output().unwrap();
        assert!(out.status.success(), "node add: {}", stderr(&out));
        let text = stdout(&out);
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {text}"))
                .to_string()
        };
        (field("node_uuid: "), field("token: "))
    }

    /// Seed 001's body with the rig's endpoint, `bucket` and keys.
    pub fn provider_body(rig: &Rig, name: &str, bucket: &str, is_default: bool) -> Value {
        json!({
            "name": name,
            "type": "s3",
            "endpoint": rig.endpoint,
            "bucket": bucket,
            "region": rig.region,
            "access_key": rig.access_key,
            "secret_key": rig.secret_key,
            "storage_limit_gb": 1000,
            "is_default": is_default
        })
    }

    pub fn create_provider(&self, body: &Value) -> Value {
        let (status, v) = self.admin("POST", "/api/v1/storage/providers", Some(body));
        assert_eq!(status, 201, "{v}");
        v
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.ws.state_dir()
    }

    /// SIGTERM, then wait for the exit (with a deadline).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("serve runs");
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        wait_for(20, "master serve to exit", || child.try_wait().unwrap())
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A unique, valid node archive key under `node`/`site`.
pub fn archive_key(node: &str, site: &str, name: &str, day: u32) -> String {
    format!("{node}/{site}/{name}_202501{day:02}_083000.tar.zst")
}

/// Put `size` bytes at `key` with `aws s3api put-object`.
pub fn put_object(rig: &Rig, bucket: &str, key: &str, size: usize, dir: &std::path::Path) {
    let file = dir.join(format!("obj-{size}"));
    std::fs::write(&file, crate::common::random(size)).unwrap();
    rig.s3api(&[
        "put-object",
        "--bucket",
        bucket,
        "--key",
        key,
        "--body",
        file.to_str().unwrap(),
    ]);
}
