//! Driving the daemon as systemd runs it: a fake notify socket, real
//! signals, the catalog read back through `list --json`.

use super::{Workspace, stderr};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A Unix datagram socket that records every notify message.
pub struct NotifySocket {
    pub path: std::path::PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    pub fn new(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = messages.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                m.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        Self { path, messages }
    }

    pub fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Wait until a message at index >= `from` contains `needle`; returns its index.
    pub fn wait_for(&self, needle: &str, from: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.all().iter().skip(from).position(|m| m.contains(needle)) {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} after #{from} within {timeout:?}: {:?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Kills the daemon if a test fails half-way, so no process outlives it.
pub struct Daemon(pub Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn spawn_daemon(ws: &Workspace, notify: &NotifySocket, extra_env: &[(&str, &str)]) -> Daemon {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("sitebackup"));
    for k in super::inherited_settings() {
        cmd.env_remove(k);
    }
    cmd.arg("--config").arg(ws.path().join("config.toml")).arg("daemon");
    cmd.envs(&ws.env)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("SITEBACKUP_LOG", "stderr")
        .env("NO_COLOR", "1")
        .current_dir(ws.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(ws.path().join("daemon.log")).unwrap());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    Daemon(cmd.spawn().unwrap())
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("daemon did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn rows(ws: &Workspace, site: &str) -> Vec<serde_json::Value> {
    let out = ws
        .cmd()
        .args(["--json", "list", "--all", "--site", site])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn log(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.path().join("daemon.log")).unwrap_or_default()
}

pub fn site_block(name: &str, path: &Path, schedule: &str, extra: &str) -> String {
    format!(
        "[[sites]]\nname = \"{name}\"\npath = \"{}\"\nschedule = \"{schedule}\"\n{extra}\n",
        path.display()
    )
}

/// The daemon's latest "Reload failed" log entry with its continuation
/// lines (the list of problems), or `None`.
pub fn failed_reload(ws: &Workspace) -> Option<String> {
    let text = log(ws);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().rposition(|l| l.contains("Reload failed"))?;
    // An entry ends where the next one starts with its timestamp.
    let is_entry =
        |l: &str| l.len() > 20 && l.as_bytes()[..4].iter().all(u8::is_ascii_digit) && l.as_bytes()[10] == b'T';
    let end = lines[start + 1..]
        .iter()
        .position(|l| is_entry(l))
        .map_or(lines.len(), |n| start + 1 + n);
    Some(lines[start..end].join("\n"))
}
