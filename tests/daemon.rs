//! The daemon as systemd runs it: a fake notify socket, real signals, real
//! Garage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::daemon::*;
use common::*;
use std::path::Path;
use std::time::Duration;

#[test]
fn daemon_runs_schedules_prunes_reloads_and_stops() {
    let rig = Rig::get();
    let mut ws = Workspace::new("daemon");
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let site = ws.make_site("site", 20_000);
    let site2 = ws.make_site("site2", 10_000);
    let every2 = "*/2 * * * * *";
    let base = format!(
        "[daemon]\ncatch_up = false\n\n{}[sites.retention]\nkeep_last = 2\n",
        site_block("blog", &site, every2, "")
    );
    ws.write_config(&base);
    let notify = NotifySocket::new(ws.path());
    let mut child = spawn_daemon(&ws, &notify, &[("WATCHDOG_USEC", "1000000")]);

    notify.wait_for("READY=1", 0, Duration::from_secs(30));
    notify.wait_for("WATCHDOG=1", 0, Duration::from_secs(10));

    // Backups happen on schedule, and retention keeps at most 2 (+1 in flight).
    poll("4 scheduled backups", Duration::from_secs(60), || {
        let r = rows(&ws, "blog");
        (r.iter()
            .filter(|r| r["status"] == "complete" || r["status"] == "deleted")
            .count()
            >= 4)
            .then_some(())
    });
    let r = rows(&ws, "blog");
    assert!(
        r.iter().any(|r| r["status"] == "deleted"),
        "nothing pruned: {r:?}\n{}",
        log(&ws)
    );
    let prefix = format!("{}/", ws.host_id);
    let archives = rig
        .keys(&rig.buckets[0], &prefix)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".tar.zst"))
        .count();
    assert!(archives <= 3, "keep_last = 2 left {archives} archives");

    // SIGHUP with a config that adds a site: RELOADING=1, READY=1, and the
    // new site gets backed up.
    let n = notify.all().len();
    ws.write_config(&format!("{base}\n{}", site_block("shop", &site2, every2, "")));
    signal(&child, "HUP");
    let reloading = notify.wait_for("RELOADING=1", n, Duration::from_secs(10));
    assert!(
        notify.all()[reloading].contains("MONOTONIC_USEC="),
        "{:?}",
        notify.all()[reloading]
    );
    notify.wait_for("READY=1", reloading, Duration::from_secs(10));
    poll("a backup of the new site", Duration::from_secs(30), || {
        rows(&ws, "shop")
            .iter()
            .any(|r| r["status"] == "complete")
            .then_some(())
    });

    // SIGHUP with a broken config: still alive, old schedule keeps running.
    let n = notify.all().len();
    ws.write_config(&format!("{base}\n{}", site_block("shop", &site2, "whenever", "")));
    signal(&child, "HUP");
    let ready = notify.wait_for("READY=1", n, Duration::from_secs(10));
    assert!(
        notify.all()[n..=ready]
            .iter()
            .any(|m| m.contains("STATUS=Reload failed")),
        "{:?}",
        notify.all()
    );
    assert!(child.try_wait().unwrap().is_none(), "daemon died on a bad reload");
    // Put the valid file back (without a SIGHUP) so `list` can read it.
    ws.write_config(&format!("{base}\n{}", site_block("shop", &site2, every2, "")));
    let before = rows(&ws, "shop").len();
    poll("the old schedule to keep running", Duration::from_secs(30), || {
        (rows(&ws, "shop").len() > before).then_some(())
    });
    let entry = failed_reload(&ws).unwrap_or_else(|| panic!("no failed reload logged:\n{}", log(&ws)));
    assert!(
        entry.contains("sites[name=shop].schedule"),
        "the failed reload names the key: {entry}"
    );

    // SIGTERM: exit 0 with STOPPING=1.
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", log(&ws));
    assert!(notify.all().iter().any(|m| m.contains("STOPPING=1")));
    assert!(rig.pending_uploads(&rig.buckets[0], &prefix).is_empty());
    for site in ["blog", "shop"] {
        let r = rows(&ws, site);
        assert!(!r.is_empty(), "{site}: no rows");
        assert!(r.iter().all(|r| r["status"] != "uploading"), "{r:?}");
    }
}

/// Values that once passed validation and crashed later (a panic in
/// `config check`, in every prune, on SIGTERM; a schedule that never fires;
/// uploads under a hidden directory; archives holding the catalog) are
/// configuration errors naming their key, in `config check` and through
/// SIGHUP, where the daemon keeps running the previous configuration.
#[test]
fn values_that_would_crash_later_are_configuration_errors() {
    let rig = Rig::get();
    let mut ws = Workspace::new("badvalues");
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let site = ws.make_site("site", 1000);
    let config = |host_id: &str, state_dir: &Path, extra: &str, schedule: &str| {
        format!(
            "host_id = \"{host_id}\"\nstate_dir = \"{}\"\n{extra}\n[daemon]\ncatch_up = false\n\n{}",
            state_dir.display(),
            site_block("blog", &site, schedule, "")
        )
    };
    let (host, state) = (ws.host_id.clone(), ws.state_dir());
    let daily = "0 0 3 * * *";
    let good = config(&host, &state, "", daily);
    let retention = |within: &str| format!("{good}[sites.retention]\nkeep_within = \"{within}\"\n");
    let cases: Vec<(String, &str)> = vec![
        (
            retention("99999999999999999999d"),
            "sites[name=blog].retention.keep_within",
        ),
        (retention("999999y"), "sites[name=blog].retention.keep_within"),
        (
            good.replace("[daemon]\n", "[daemon]\ndrain_timeout_secs = 9223372036854775807\n"),
            "daemon.drain_timeout_secs",
        ),
        (config(&host, &state, "", "0 0 0 30 2 *"), "sites[name=blog].schedule"),
        (config(".x", &state, "", daily), "host_id"),
        (config(&host, &site.join("state"), "", daily), "state_dir"),
        (
            config(
                &host,
                &state,
                &format!(
                    "[[servers]]\nid = 9\ntype = \"local\"\npath = \"{}/backups\"\n",
                    site.display()
                ),
                daily,
            ),
            "servers[id=9].path",
        ),
    ];
    let path = ws.path().join("config.toml");
    for (text, key) in &cases {
        std::fs::write(&path, text).unwrap();
        let out = ws.cmd().args(["config", "check"]).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert!(
            err.contains(&format!("{key}:")) || err.contains(&format!("{key} (env")),
            "{key}: {err}"
        );
        assert!(!err.contains("panicked"), "{key}: {err}");
    }

    std::fs::write(&path, &good).unwrap();
    let notify = NotifySocket::new(ws.path());
    let mut child = spawn_daemon(&ws, &notify, &[]);
    let mut from = notify.wait_for("READY=1", 0, Duration::from_secs(30));
    for (text, key) in &cases {
        std::fs::write(&path, text).unwrap();
        signal(&child, "HUP");
        from = notify.wait_for("Reload failed", from + 1, Duration::from_secs(30));
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "daemon died on {key}: {}",
            log(&ws)
        );
        assert!(log(&ws).contains(key), "the failed reload names {key}: {}", log(&ws));
    }
    // Still alive and still stopping cleanly with the previous configuration.
    std::fs::write(&path, &good).unwrap();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", log(&ws));
}

/// A stop between the server's completion and the catalog write leaves a
/// row `uploading` that already holds the final size and checksum. At the
/// next start the object is found whole (size and sidecar match), so the
/// row is recorded complete and the object kept. (Before: the row was
/// marked failed and the whole object deleted.)
#[test]
fn start_up_records_an_upload_that_completed_before_a_crash() {
    let rig = Rig::get();
    let mut ws = Workspace::new("completedcrash");
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let site = ws.make_site("site", 30_000);
    ws.write_config(&format!(
        "[daemon]\ncatch_up = false\n\n{}",
        site_block("blog", &site, "0 0 3 * * *", "")
    ));
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let row = rows(&ws, "blog").remove(0);
    let key = row["key"].as_str().unwrap().to_string();
    // What a crash right after CompleteMultipartUpload leaves.
    let db = rusqlite::Connection::open(ws.state_dir().join("catalog.db")).unwrap();
    db.execute(
        "UPDATE s3_archives SET status = 'uploading', upload_id = 'gone-upload-id', completed_at = NULL WHERE key = ?1",
        [&key],
    )
    .unwrap();
    db.execute("UPDATE backup_runs SET outcome = 'running', finished_at = NULL", [])
        .unwrap();
    drop(db);

    let notify = NotifySocket::new(ws.path());
    let mut child = spawn_daemon(&ws, &notify, &[]);
    notify.wait_for("READY=1", 0, Duration::from_secs(30));
    let after = rows(&ws, "blog");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["status"], "complete", "{after:?}\n{}", log(&ws));
    assert_eq!(after[0]["sha256"], row["sha256"]);
    let prefix = format!("{}/", ws.host_id);
    let keys: Vec<String> = rig.keys(&rig.buckets[0], &prefix).into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&key), "the whole object was deleted: {keys:?}");
    assert!(keys.contains(&format!("{key}.sha256")), "{keys:?}");
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).code(), Some(0));
}

/// A job stuck on network I/O no longer keeps the service "healthy": with
/// the server hanging on CreateMultipartUpload (rust-s3's own timeout is
/// minutes away), no bytes move and no step is running, so after the idle
/// timeout the heartbeat goes stale and the watchdog pings stop.
/// (Before: the heartbeat was refreshed every second while any job ran.)
#[test]
fn a_job_stuck_on_the_network_stops_the_watchdog_pings() {
    use common::http_proxy::{Fault, HttpProxy};
    let rig = Rig::get();
    let mut ws = Workspace::new("stuck");
    let proxy = HttpProxy::start(&rig.endpoint, Fault::HangCreateUpload);
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone())]);
    let site = ws.make_site("site", 10_000);
    // catch_up (the default) runs the never-backed-up site at start.
    ws.write_config(&format!(
        "[network]\nidle_timeout_secs = 2\n\n{}",
        site_block("blog", &site, "0 0 3 * * *", "")
    ));
    let notify = NotifySocket::new(ws.path());
    let _child = spawn_daemon(&ws, &notify, &[("WATCHDOG_USEC", "2000000")]);
    notify.wait_for("READY=1", 0, Duration::from_secs(30));
    notify.wait_for("WATCHDOG=1", 0, Duration::from_secs(10));
    poll("the hanging CreateMultipartUpload", Duration::from_secs(30), || {
        proxy
            .seen()
            .iter()
            .any(|s| s.method == "POST" && s.target.contains("uploads"))
            .then_some(())
    });
    let withheld = |log: &str| log.matches("withholding the watchdog ping").count();
    poll("the watchdog withholding its ping", Duration::from_secs(30), || {
        (withheld(&log(&ws)) >= 1).then_some(())
    });
    let pings = |n: &NotifySocket| n.all().iter().filter(|m| m.contains("WATCHDOG=1")).count();
    let before = pings(&notify);
    let seen = withheld(&log(&ws));
    // Two more watchdog rounds (one per second here): still no ping.
    poll("two more withheld pings", Duration::from_secs(30), || {
        (withheld(&log(&ws)) >= seen + 2).then_some(())
    });
    assert_eq!(pings(&notify), before, "pinged while the job was stuck:\n{}", log(&ws));
    assert!(
        log(&ws).contains("moved no bytes for longer than the idle timeout"),
        "{}",
        log(&ws)
    );
}

#[test]
fn a_second_daemon_on_the_same_state_dir_exits_2_naming_the_first() {
    let ws = Workspace::new("instance-lock");
    let site = ws.make_site("site", 1_000);
    let store = ws.path().join("store");
    std::fs::create_dir(&store).unwrap();
    ws.write_config(&format!(
        "[daemon]\ncatch_up = false\n\n[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n\n{}",
        store.display(),
        site_block("blog", &site, "0 0 3 * * *", "")
    ));
    let notify = NotifySocket::new(ws.path());
    let mut first = spawn_daemon(&ws, &notify, &[]);
    notify.wait_for("READY=1", 0, Duration::from_secs(60));

    let out = ws
        .cmd()
        .env("SITEBACKUP_LOG", "stderr")
        .arg("daemon")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("PID {}", first.id())), "{err}");
    assert!(err.contains("daemon.lock"), "{err}");

    signal(&first, "TERM");
    assert!(wait_exit(&mut first, Duration::from_secs(60)).success(), "{}", log(&ws));
}
