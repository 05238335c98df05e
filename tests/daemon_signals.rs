//! Signals while the daemon uploads: SIGTERM (abort, drain, a second
//! SIGTERM), kill -9, SIGHUP. The upload is made slow by a proxy that lets
//! part bodies through at a fixed rate (`common::throttle`), not by a slow
//! compressor, so each test holds on a fast machine as on a slow one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::daemon::*;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// 12 MB of incompressible data: three parts of at most 5 MiB.
const SITE_BYTES: usize = 12_000_000;

/// A daemon backing up a slow site through a throttling proxy.
struct Slow {
    rig: Rig,
    ws: Workspace,
    proxy: ThrottleProxy,
    site: PathBuf,
    prefix: String,
}

impl Slow {
    /// The site `slow` (yearly schedule, so only catch-up runs it at
    /// start), parts sent at `rate` bytes per second per connection,
    /// `daemon` added to the `[daemon]` table, and `others`: small sites
    /// after it, due at start too.
    fn new(name: &str, rate: u64, daemon: &str, others: &[&str]) -> Self {
        Self::new_on(&Rig::garage(), name, rate, daemon, others)
    }

    /// [`Slow::new`] on one S3 server of the rig.
    fn new_on(rig: &Rig, name: &str, rate: u64, daemon: &str, others: &[&str]) -> Self {
        let rig = rig.clone();
        let mut ws = Workspace::new(name);
        let site = ws.path().join("slow");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(site.join("big.bin"), random(SITE_BYTES)).unwrap();
        let proxy = ThrottleProxy::start(&rig.endpoint);
        proxy.shape(Throttle {
            upload_rate: Some(rate),
            ..Throttle::default()
        });
        ws.set_env(rig.server_env(1, &rig.buckets[1]));
        ws.set_env([("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone())]);
        let prefix = format!("{}/", ws.host_id);
        let mut extra = String::new();
        for other in others {
            let path = ws.make_site(other, 1000);
            extra.push_str(&site_block(other, &path, "0 0 3 1 1 *", ""));
        }
        let slow = Self {
            rig,
            ws,
            proxy,
            site,
            prefix,
        };
        slow.write_config(daemon, "", &extra);
        slow
    }

    fn write_config(&self, daemon: &str, site_extra: &str, extra: &str) {
        self.ws.write_config(&format!(
            "[daemon]\ncatch_up = true\n{daemon}\n\n{}{extra}",
            site_block("slow", &self.site, "0 0 3 1 1 *", site_extra)
        ));
    }

    /// Part uploads (PUTs of the archive key) the proxy has seen begin.
    fn part_puts(&self) -> usize {
        self.proxy
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with(".tar.zst"))
            .count()
    }

    /// Start the daemon and wait until a part upload has begun.
    fn start_mid_upload(&self) -> (Daemon, NotifySocket) {
        let notify = NotifySocket::new(self.ws.path());
        let child = spawn_daemon(&self.ws, &notify, &[]);
        notify.wait_for("READY=1", 0, Duration::from_secs(30));
        poll("a part upload under way", Duration::from_secs(60), || {
            (self.part_puts() > 0).then_some(())
        });
        (child, notify)
    }

    fn pending_uploads(&self) -> Vec<String> {
        self.rig.pending_uploads(&self.rig.buckets[1], &self.prefix)
    }

    fn data_keys(&self) -> Vec<(String, u64)> {
        self.rig.data_keys(&self.rig.buckets[1], &self.prefix)
    }

    /// Runs of `site` in the catalog, read with SQLite directly.
    fn runs_of(&self, site: &str) -> i64 {
        let db = rusqlite::Connection::open(self.ws.state_dir().join("catalog.db")).unwrap();
        db.query_row("SELECT COUNT(*) FROM backup_runs WHERE site = ?1", [site], |r| r.get(0))
            .unwrap()
    }
}

#[test]
fn sigterm_during_an_upload_aborts_it_cleanly_and_exits_0() {
    let s = Slow::new("sigterm", 500_000, "drain_timeout_secs = 0", &[]);
    let (mut child, notify) = s.start_mid_upload();
    let r = rows(&s.ws, "slow");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["status"], "uploading", "{r:?}");
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", log(&s.ws));
    assert!(notify.all().iter().any(|m| m.contains("STOPPING=1")));
    assert!(s.pending_uploads().is_empty(), "upload left open");
    assert!(s.data_keys().is_empty(), "partial object left");
    let r = rows(&s.ws, "slow");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["status"], "failed", "{r:?}");
}

// Also on s3s-fs, which cannot list open uploads: start-up aborts the one
// the catalog recorded, by id.
per_server!(after_kill_9_the_next_start_cleans_up);

fn after_kill_9_the_next_start_cleans_up(rig: &Rig) {
    let s = Slow::new_on(rig, "kill9", 500_000, "", &[]);
    let (mut child, _notify) = s.start_mid_upload();
    child.kill().unwrap();
    child.wait().unwrap();
    let r = rows(&s.ws, "slow");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["status"], "uploading", "{r:?}");
    assert_eq!(s.pending_uploads().len(), 1);

    // Restart without catch-up: start-up alone must clean up.
    s.ws.write_config(&format!(
        "[daemon]\ncatch_up = false\n\n{}",
        site_block("slow", &s.site, "0 0 3 1 1 *", "")
    ));
    let second = s.ws.path().join("second-start");
    std::fs::create_dir_all(&second).unwrap();
    let notify2 = NotifySocket::new(&second);
    let mut child = spawn_daemon(&s.ws, &notify2, &[]);
    notify2.wait_for("READY=1", 0, Duration::from_secs(30));
    let r = rows(&s.ws, "slow");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["status"], "failed", "{r:?}");
    assert!(s.pending_uploads().is_empty(), "stale upload not aborted");
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).code(), Some(0));
}

/// SIGTERM mid-upload with a drain window longer than the upload: the
/// upload finishes and is recorded, systemd hears `EXTEND_TIMEOUT_USEC`,
/// and the site queued behind it never starts.
#[test]
fn an_upload_finishing_within_the_drain_window_is_kept_and_no_new_job_starts() {
    // About 4 s of upload at 2 MB/s per part; 60 s of drain.
    let s = Slow::new("drain", 2_000_000, "drain_timeout_secs = 60", &["later"]);
    let (mut child, notify) = s.start_mid_upload();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(90));
    assert_eq!(status.code(), Some(0), "{}", log(&s.ws));
    let r = rows(&s.ws, "slow");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["status"], "complete", "{r:?}\n{}", log(&s.ws));

    // While it drained, systemd was asked for more time than the window.
    let stopping = notify.wait_for("STOPPING=1", 0, Duration::ZERO);
    let extend = notify.wait_for("EXTEND_TIMEOUT_USEC=", stopping, Duration::ZERO);
    let usec: u64 = notify.all()[extend]
        .split("EXTEND_TIMEOUT_USEC=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(usec >= 60_000_000, "the extension covers the drain window: {usec}");
    let key = r[0]["key"].as_str().unwrap();
    let stored = s.data_keys();
    assert!(
        stored
            .iter()
            .any(|(k, size)| k == key && Some(*size) == r[0]["size_bytes"].as_u64()),
        "{stored:?}"
    );
    assert!(s.pending_uploads().is_empty());
    // Queued behind it by the same catch-up, but never started.
    assert_eq!(s.runs_of("later"), 0, "{}", log(&s.ws));
    assert!(rows(&s.ws, "later").is_empty());
}

/// A second SIGTERM while the first drains: the daemon exits at once with
/// the code the README gives (1), long before the upload could end.
#[test]
fn a_second_sigterm_exits_at_once_with_code_1() {
    // 12 MB at 300 kB/s per part: well over 30 s of upload.
    let s = Slow::new("sigterm2", 300_000, "drain_timeout_secs = 600", &[]);
    let (mut child, notify) = s.start_mid_upload();
    signal(&child, "TERM");
    notify.wait_for("STOPPING=1", 0, Duration::from_secs(10));
    let sent = Instant::now();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(1), "{}", log(&s.ws));
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    assert!(log(&s.ws).contains("Second SIGTERM: exiting at once"), "{}", log(&s.ws));
    // What the hard exit left behind is cleaned up by `reconcile`.
    assert_eq!(s.pending_uploads().len(), 1);
    let out = s.ws.cmd().arg("reconcile").output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(s.pending_uploads().is_empty());
    assert!(s.data_keys().is_empty(), "{:?}", s.data_keys());
}

/// SIGHUP mid-upload, first with a broken file, then with one that
/// changes the running site: the failed reload names the key, the good
/// one is taken, and the running backup goes on with the configuration
/// it started with, to one complete archive.
#[test]
fn sighup_during_a_backup_leaves_it_untouched() {
    // About 15 s of upload at 500 kB/s per part.
    let s = Slow::new("hupmid", 500_000, "", &[]);
    let (mut child, notify) = s.start_mid_upload();

    let n = notify.all().len();
    s.ws.write_config(&format!(
        "[daemon]\ncatch_up = true\n\n{}",
        site_block("slow", &s.site, "whenever", "")
    ));
    signal(&child, "HUP");
    let failed = notify.wait_for("STATUS=Reload failed", n, Duration::from_secs(10));
    assert!(
        notify.all()[failed].contains("1 problem(s)"),
        "{:?}",
        notify.all()[failed]
    );
    let entry = failed_reload(&s.ws).unwrap_or_else(|| panic!("no failed reload logged:\n{}", log(&s.ws)));
    assert!(entry.contains("sites[name=slow].schedule"), "the key is named: {entry}");

    // A valid file that would exclude the one big file.
    let n = notify.all().len();
    s.write_config("", "exclude = [\"big.bin\"]", "");
    signal(&child, "HUP");
    let reloading = notify.wait_for("RELOADING=1", n, Duration::from_secs(10));
    notify.wait_for("READY=1", reloading, Duration::from_secs(10));
    assert!(log(&s.ws).contains("Configuration reloaded."), "{}", log(&s.ws));
    let r = rows(&s.ws, "slow");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        r[0]["status"], "uploading",
        "both reloads came during the upload: {r:?}"
    );

    let row = poll("the backup to complete", Duration::from_secs(90), || {
        let r = rows(&s.ws, "slow");
        (r.len() == 1 && r[0]["status"] != "uploading").then(|| r[0].clone())
    });
    assert_eq!(row["status"], "complete", "{row}\n{}", log(&s.ws));
    assert_eq!(rows(&s.ws, "slow").len(), 1, "one attempt, never restarted");
    // The archive is the one the old configuration made: big.bin is in it.
    let file = s.ws.path().join("dl.tar.zst");
    s.rig.download(&s.rig.buckets[1], row["key"].as_str().unwrap(), &file);
    assert_eq!(sha256_file(&file), row["sha256"].as_str().unwrap());
    assert!(tar_listing(&file).contains(&"files/big.bin".to_string()));

    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).code(), Some(0));
}
