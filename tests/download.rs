//! Downloads over slow and broken links, against Garage through a
//! throttling proxy (`common::throttle`): no deadline on a download as a
//! whole, an idle timeout that names the server, and a cut download
//! resumed with a `Range` request, the checksum still matching.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The idle window every test here configures.
const IDLE_SECS: u64 = 3;

/// A rich site backed up through a proxy in front of Garage (everything
/// passes untouched until the test shapes it), with a 3 s idle window.
struct Setup {
    rig: Rig,
    ws: Workspace,
    proxy: ThrottleProxy,
    site: PathBuf,
    id: i64,
    key: String,
    sha256: String,
    size: u64,
}

fn setup(name: &str) -> Setup {
    let rig = Rig::get();
    let mut ws = Workspace::new(name);
    let site = make_rich_site(ws.path(), "site", 1_000_000);
    ws.write_config(&format!(
        "[network]\nidle_timeout_secs = {IDLE_SECS}\n\n[[sites]]\nname = \"blog\"\npath = \"{}\"\n",
        site.display()
    ));
    // Backup and restore both go through the proxy: the catalog row names
    // the endpoint, and restore by id looks for that server.
    let proxy = ThrottleProxy::start(&rig.endpoint);
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone())]);
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let archive = &report["results"][0]["archive"];
    // Part PUTs hand their body over piece by piece (for the idle clock)
    // but still declare its length: S3 wants no chunked upload.
    let puts: Vec<SeenRequest> = proxy.requests().into_iter().filter(|r| r.method == "PUT").collect();
    assert!(!puts.is_empty());
    for put in &puts {
        assert!(put.header("content-length").is_some(), "{put:?}");
        assert_eq!(put.header("transfer-encoding"), None, "{put:?}");
    }
    Setup {
        id: archive["id"].as_i64().unwrap(),
        key: archive["key"].as_str().unwrap().to_string(),
        sha256: archive["sha256"].as_str().unwrap().to_string(),
        size: archive["size_bytes"].as_u64().unwrap(),
        rig,
        ws,
        proxy,
        site,
    }
}

impl Setup {
    /// Shape the archive's download (not its checksum sidecar).
    fn shape(&self, throttle: Throttle) {
        self.proxy.shape(Throttle {
            path_suffix: ".tar.zst".into(),
            ..throttle
        });
    }

    /// `--json restore ID --to DIR`, timed.
    fn restore(&self, dir: &std::path::Path) -> (std::process::Output, Duration) {
        let started = Instant::now();
        let out = self
            .ws
            .cmd()
            .args(["--json", "restore", &self.id.to_string(), "--to"])
            .arg(dir)
            .output()
            .unwrap();
        (out, started.elapsed())
    }

    fn assert_restored(&self, out: &std::process::Output, dir: &std::path::Path) {
        assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["sha256"], self.sha256.as_str(), "{report}");
        assert_eq!(report["size_bytes"], self.size, "{report}");
        let sources: Vec<&str> = report["checked_against"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["source"].as_str().unwrap())
            .collect();
        assert_eq!(sources, ["catalog", "sidecar"], "{report}");
        assert_same_tree(&self.site, &dir.join("files"));
    }
}

#[test]
fn a_download_trickled_over_15_s_succeeds_with_a_3_s_idle_window() {
    let s = setup("dl-trickle");
    // About 15 s for the whole archive: five idle windows, never silent.
    s.shape(Throttle {
        rate: Some(s.size / 15),
        ..Throttle::default()
    });
    let dir = s.ws.path().join("restored");
    let (out, took) = s.restore(&dir);
    s.assert_restored(&out, &dir);
    assert!(
        took >= Duration::from_secs(12),
        "the throttle did not hold the download back: {took:?}"
    );
    let shaped = s.proxy.shaped();
    assert_eq!(shaped.len(), 1, "one request, never resumed: {shaped:?}");
}

#[test]
fn a_download_stalled_for_5_s_fails_with_an_idle_timeout_naming_the_server() {
    let s = setup("dl-stall");
    s.shape(Throttle {
        stall: Some((s.size / 2, Duration::from_secs(5))),
        ..Throttle::default()
    });
    let dir = s.ws.path().join("restored");
    let (out, took) = s.restore(&dir);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    let server = format!(
        "server 1 ({}/{})",
        s.proxy.url.trim_start_matches("http://"),
        s.rig.buckets[0]
    );
    let expected = format!(
        "{server}: no data for {IDLE_SECS} s (idle timeout) while downloading {}",
        s.key
    );
    assert!(err.contains(&expected), "expected {expected:?} in:\n{err}");
    assert!(err.contains("partial tree was removed"), "{err}");
    assert!(!dir.exists(), "the restore created DIR, so it removes it");
    assert!(took >= Duration::from_secs(IDLE_SECS), "{took:?}");
    assert_eq!(s.proxy.shaped().len(), 1, "silence is not resumed");
}

#[test]
fn a_download_cut_half_way_resumes_with_a_range_request() {
    let s = setup("dl-cut");
    let half = s.size / 2;
    s.shape(Throttle {
        cut_after: Some(half),
        ..Throttle::default()
    });
    let dir = s.ws.path().join("restored");
    let (out, _) = s.restore(&dir);
    s.assert_restored(&out, &dir);
    assert!(
        stderr(&out).contains("Download cut; resuming from byte"),
        "{}",
        stderr(&out)
    );

    let shaped = s.proxy.shaped();
    assert_eq!(shaped.len(), 2, "{shaped:?}");
    assert_eq!(shaped[0].header("range"), None);
    // The resume asks for exactly the bytes not yet received, pinned to
    // the version the first answer named.
    let range = format!("bytes={half}-");
    assert_eq!(shaped[1].header("range"), Some(range.as_str()), "{shaped:?}");
    assert!(
        shaped[1].header("if-match").is_some_and(|e| !e.is_empty()),
        "{shaped:?}"
    );
}

/// A real SIGINT (Ctrl-C) to `restore` half-way through a slow download:
/// it stops, says so, exits 1, and leaves the target as it found it (here
/// an empty directory): no published entry, no partial tree.
#[test]
fn sigint_mid_download_leaves_no_tree_behind() {
    let s = setup("dl-sigint");
    // About 20 s for the whole archive.
    s.shape(Throttle {
        rate: Some(s.size / 20),
        ..Throttle::default()
    });
    let dir = s.ws.path().join("restored");
    std::fs::create_dir(&dir).unwrap();
    let log = s.ws.path().join("restore.log");
    let mut child =
        s.ws.spawn_cmd()
            .args(["restore", &s.id.to_string(), "--to"])
            .arg(&dir)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
    // Wait until the archive's bytes flow and the partial tree exists.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.proxy.shaped().is_empty() || entries_of(&dir).is_empty() {
        assert!(Instant::now() < deadline, "the download never started");
        assert!(child.try_wait().unwrap().is_none(), "restore ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let partial = entries_of(&dir);
    assert!(
        partial.len() == 1 && partial[0].starts_with(".sitebackup-partial-"),
        "{partial:?}"
    );
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = sent + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("restore did not stop within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        entries_of(&dir).is_empty(),
        "left in DIR: {:?}\n{err}",
        entries_of(&dir)
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("Interrupted: stopping the download."), "{err}");
    assert!(err.contains("partial tree was removed"), "{err}");
    assert_eq!(s.proxy.shaped().len(), 1, "an interrupt is not resumed");
}
