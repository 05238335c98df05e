//! `backup` end to end against both S3 servers of the rig (Garage and
//! s3s-fs, see `per_server!`) and across them, checked with `aws`, `zstd`
//! and `tar`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

per_server!(
    backup_lands_and_reads_back_with_stock_tools,
    backup_fails_over_from_a_dead_server,
    dead_server_then_crossed_limit_then_a_good_server,
    a_full_server_is_skipped_without_an_upload,
    wrong_credentials_fail_over_and_are_recorded,
    a_server_dying_mid_upload_fails_over_and_leaves_nothing,
    a_limit_crossed_mid_upload_stops_it_before_half_the_archive_is_sent,
);

fn site_toml(name: &str, path: &std::path::Path) -> String {
    format!(
        "[[sites]]\nname = \"{name}\"\npath = \"{}\"\nexclude = [\"wp-content/cache/**\"]\n",
        path.display()
    )
}

fn backup_lands_and_reads_back_with_stock_tools(rig: &Rig) {
    let mut ws = Workspace::new("backup");
    let site = ws.make_site("site", 7 * 1024 * 1024);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));

    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = &report["results"][0];
    assert_eq!(result["outcome"], "success", "{report}");
    let key = result["archive"]["key"].as_str().unwrap().to_string();
    let prefix = format!("{}/", ws.host_id);
    assert!(
        key.starts_with(&prefix) && key.contains("/blog-backup-") && key.ends_with(".tar.zst"),
        "{key}"
    );

    // The object is there, per an independent client, with its metadata.
    let objects = rig.keys(&rig.buckets[0], &prefix);
    let (_, size) = objects.iter().find(|(k, _)| *k == key).expect("archive object").clone();
    let head = rig.s3api(&["head-object", "--bucket", &rig.buckets[0], "--key", &key]);
    assert_eq!(head["Metadata"]["site"], "blog", "{head}");
    assert_eq!(head["Metadata"]["host"], ws.host_id.as_str(), "{head}");
    // The installation's id is in the object's metadata and in the owner
    // marker the first backup wrote under the prefix.
    let install: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.state_dir().join("install-id.json")).unwrap()).unwrap();
    let install_id = install["install_id"].as_str().unwrap();
    assert_eq!(head["Metadata"]["install-id"], install_id, "{head}");
    let marker_file = ws.path().join("marker.json");
    rig.download(&rig.buckets[0], &format!("{prefix}.sitebackup-owner"), &marker_file);
    let marker: serde_json::Value = serde_json::from_slice(&std::fs::read(&marker_file).unwrap()).unwrap();
    assert_eq!(marker["install_id"], install_id, "{marker}");
    assert!(rig.pending_uploads(&rig.buckets[0], &prefix).is_empty());

    // Download with aws, check the checksum, read it with zstd + tar.
    let file = ws.path().join("download.tar.zst");
    rig.download(&rig.buckets[0], &key, &file);
    let sha = sha256_file(&file);
    let rows = list_json(&ws, &[]);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    for field in [
        "id",
        "site",
        "server_id",
        "bucket",
        "key",
        "size_bytes",
        "sha256",
        "created_at",
        "status",
    ] {
        assert!(row.get(field).is_some(), "list --json lacks {field}: {row}");
    }
    assert_eq!(row["status"], "complete");
    assert_eq!(row["sha256"], sha.as_str());
    assert_eq!(row["size_bytes"], size);
    assert_eq!(row["server_id"], 1);
    let sidecar = ws.path().join("download.sha256");
    rig.download(&rig.buckets[0], &format!("{key}.sha256"), &sidecar);
    assert!(std::fs::read_to_string(&sidecar).unwrap().starts_with(&sha));

    let names = tar_listing(&file);
    for expected in [
        "files/index.php",
        "files/default.php",
        "files/wp-content/uploads/2024/photo.bin",
        "manifest.json",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("cache/page.html")),
        "excluded file archived"
    );
    let extract = ws.path().join("extract");
    common::extract(&file, &extract);
    assert_eq!(
        std::fs::read(extract.join("files/wp-content/uploads/2024/photo.bin")).unwrap(),
        std::fs::read(site.join("wp-content/uploads/2024/photo.bin")).unwrap()
    );
    assert_eq!(
        std::fs::read_link(extract.join("files/default.php")).unwrap().to_str(),
        Some("index.php")
    );

    // `servers` now reports the usage from the catalog, and the optional
    // calls the server implements.
    let out = ws.cmd().arg("servers").output().unwrap();
    assert!(
        stdout(&out).contains(&format!("Usage: {:.2} MB", size as f64 / 1e6)),
        "{}",
        stdout(&out)
    );
    let lists = if rig.lists_uploads() { "yes" } else { "no" };
    assert!(
        stdout(&out).contains(&format!("Optional calls: list open uploads: {lists}")),
        "{}",
        stdout(&out)
    );
    let out = ws.cmd().args(["--json", "servers"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let caps = &v["servers"][0]["capabilities"];
    assert_eq!(
        caps["list_uploads"],
        if rig.lists_uploads() {
            "supported"
        } else {
            "unsupported"
        },
        "{v}"
    );
}

/// Two independent S3 implementations in one setup: a backup fails over
/// from one to the other, both ways (server 1 Garage with its bucket
/// missing, then server 1 s3s-fs with a wrong secret key), and the archive
/// lands whole on the other one, nothing left behind on the first.
#[test]
fn mixed_servers_fail_over_between_garage_and_s3s_fs() {
    let (garage, s3s) = (Rig::garage(), Rig::s3s());
    let cases: [(&Rig, &Rig, (&str, &str), &str); 2] = [
        (&garage, &s3s, ("BUCKET", "sb-no-such-bucket"), "Bucket not found"),
        (
            &s3s,
            &garage,
            ("SECRET_KEY", "not-the-secret-at-all-0000"),
            "Invalid S3 credentials",
        ),
    ];
    for (first, second, (field, value), reason) in cases {
        let mut ws = Workspace::new("mixed");
        let site = ws.make_site("site", 6_000_000);
        ws.write_config(&site_toml("blog", &site));
        ws.set_env(first.server_env(1, &first.buckets[0]));
        ws.set_env([(format!("S3_SERVER_1_{field}"), value.to_string())]);
        ws.set_env(second.server_env(2, &second.buckets[0]));
        let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let r = &report["results"][0];
        assert_eq!(r["attempts"][0]["outcome"], "failed", "{report}");
        assert!(
            r["attempts"][0]["reason"].as_str().unwrap().starts_with(reason),
            "{:?} → {:?}: {report}",
            first.kind,
            second.kind
        );
        assert_eq!(r["archive"]["server_id"], 2, "{report}");
        let key = r["archive"]["key"].as_str().unwrap();
        let file = ws.path().join("dl.tar.zst");
        second.download(&second.buckets[0], key, &file);
        assert_eq!(sha256_file(&file), r["archive"]["sha256"].as_str().unwrap());
        assert!(tar_listing(&file).contains(&"files/index.php".to_string()));
        let prefix = format!("{}/", ws.host_id);
        assert!(first.data_keys(&first.buckets[0], &prefix).is_empty());
        assert!(first.pending_uploads(&first.buckets[0], &prefix).is_empty());
    }
}

fn backup_fails_over_from_a_dead_server(rig: &Rig) {
    let mut ws = Workspace::new("failover");
    let site = ws.make_site("site", 100_000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(dead_server(1));
    ws.set_env(rig.server_env(2, &rig.buckets[1]));
    let out = ws.cmd().args(["--json", "backup", "--all"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["results"][0];
    assert_eq!(r["archive"]["server_id"], 2, "{report}");
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["server_id"], 1);
    assert_eq!(attempts[0]["outcome"], "failed");
    assert!(
        attempts[0]["reason"].as_str().unwrap().contains("Connection error"),
        "{report}"
    );
    assert_eq!(attempts[1]["outcome"], "succeeded");
    let key = r["archive"]["key"].as_str().unwrap();
    assert!(
        rig.keys(&rig.buckets[1], &format!("{}/", ws.host_id))
            .iter()
            .any(|(k, _)| k == key)
    );
    let rows = list_json(&ws, &["--server", "2"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "complete");
}

fn dead_server_then_crossed_limit_then_a_good_server(rig: &Rig) {
    let mut ws = Workspace::new("limits");
    // 6,000,000 bytes of incompressible data: the archive is a little larger.
    let site = ws.path().join("site");
    std::fs::create_dir_all(site.join("wp-content")).unwrap();
    std::fs::write(site.join("wp-content/media.bin"), random(6_000_000)).unwrap();
    ws.write_config(&site_toml("blog", &site));
    // Server 1 is a dead endpoint.
    ws.set_env(dead_server(1));
    // Server 2's limit is smaller than the archive but passes the estimate
    // (the source size): the upload crosses it and must abort.
    ws.set_env(rig.server_env(2, &rig.buckets[1]));
    ws.set_env([("S3_SERVER_2_STORAGE_LIMIT_GB".to_string(), "0.006001".to_string())]);
    // Server 3 is fine.
    ws.set_env(rig.server_env(3, &rig.buckets[2]));

    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["results"][0];
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], "failed", "{report}");
    assert!(
        attempts[0]["reason"].as_str().unwrap().contains("Connection error"),
        "{report}"
    );
    assert_eq!(attempts[1]["outcome"], "failed", "{report}");
    assert!(
        attempts[1]["reason"].as_str().unwrap().contains("Not enough space"),
        "{report}"
    );
    assert_eq!(attempts[2]["outcome"], "succeeded", "{report}");
    assert_eq!(r["archive"]["server_id"], 3);

    let prefix = format!("{}/", ws.host_id);
    assert!(
        rig.data_keys(&rig.buckets[1], &prefix).is_empty(),
        "object left on server 2"
    );
    assert!(
        rig.pending_uploads(&rig.buckets[1], &prefix).is_empty(),
        "upload left open on server 2"
    );
    // The catalog: servers 1 and 2 failed; one complete row, on server 3,
    // under the contract's key, whose sha256 is that of the stored object.
    let rows = list_json(&ws, &["--all"]);
    let statuses: Vec<(i64, &str)> = rows
        .iter()
        .map(|r| (r["server_id"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, vec![(1, "failed"), (2, "failed"), (3, "complete")]);
    let key = rows[2]["key"].as_str().unwrap();
    let file_name = key.rsplit('/').next().unwrap();
    let date_dirs = &key[prefix.len()..key.len() - file_name.len()];
    assert_eq!(date_dirs.len(), "YYYY/MM/DD/".len(), "{key}");
    assert!(
        file_name.starts_with("blog-backup-") && file_name.ends_with(".tar.zst"),
        "{key}"
    );
    let file = ws.path().join("dl.tar.zst");
    rig.download(&rig.buckets[2], key, &file);
    assert_eq!(sha256_file(&file), rows[2]["sha256"].as_str().unwrap());
    let names = tar_listing(&file);
    assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
    assert!(names.contains(&"files/wp-content/media.bin".to_string()), "{names:?}");
}

fn a_full_server_is_skipped_without_an_upload(rig: &Rig) {
    let mut ws = Workspace::new("full");
    let site = ws.make_site("site", 2_000_000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_STORAGE_LIMIT_GB".to_string(), "0.001".to_string())]);
    ws.set_env(rig.server_env(2, &rig.buckets[1]));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["results"][0];
    assert_eq!(r["attempts"][0]["outcome"], "skipped", "{report}");
    assert!(
        r["attempts"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("Not enough space"),
        "{report}"
    );
    assert_eq!(r["archive"]["server_id"], 2);
    // Skipped means no row at all for server 1.
    assert!(list_json(&ws, &["--all", "--server", "1"]).is_empty());
}

#[test]
fn every_server_failing_exits_1_with_no_complete_row() {
    let mut ws = Workspace::new("allfail");
    let site = ws.make_site("site", 1000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(dead_server(1));
    ws.set_env(dead_server(2));
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("blog: FAILED"), "{}", stdout(&out));
    let rows = list_json(&ws, &["--all"]);
    // One row per server tried, each failed (none complete).
    let statuses: Vec<(i64, &str)> = rows
        .iter()
        .map(|r| (r["server_id"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [(1, "failed"), (2, "failed")], "{rows:?}");
}

#[test]
fn a_locked_site_reports_already_running() {
    let rig = Rig::get();
    let mut ws = Workspace::new("lock");
    let site = ws.make_site("site", 1000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let locks = ws.state_dir().join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let held = std::fs::File::create(locks.join("blog.lock")).unwrap();
    held.lock().unwrap();
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("already running"), "{}", stdout(&out));
    assert!(rig.keys(&rig.buckets[0], &format!("{}/", ws.host_id)).is_empty());
    drop(held);
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn quick_start_local_target_backup() {
    let ws = Workspace::new("local");
    let site = ws.make_site("site", 50_000);
    let target = ws.path().join("backups");
    // As in the README's quick start: the directory is made first.
    std::fs::create_dir(&target).unwrap();
    ws.write_config(&format!(
        "[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n\n{}",
        target.display(),
        site_toml("blog", &site)
    ));
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = list_json(&ws, &[]);
    let key = rows[0]["key"].as_str().unwrap();
    let file = target.join(key);
    assert_eq!(sha256_file(&file), rows[0]["sha256"].as_str().unwrap());
    assert!(tar_listing(&file).contains(&"files/index.php".to_string()));
}

fn wrong_credentials_fail_over_and_are_recorded(rig: &Rig) {
    let mut ws = Workspace::new("wrongcreds");
    let site = ws.make_site("site", 1000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([(
        "S3_SERVER_1_SECRET_KEY".to_string(),
        "not-the-secret-at-all-0000".to_string(),
    )]);
    ws.set_env(rig.server_env(2, &rig.buckets[1]));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["results"][0]["archive"]["server_id"], 2, "{report}");
    // The runs table, read straight from SQLite, says why server 1 failed.
    let db = rusqlite::Connection::open(ws.state_dir().join("catalog.db")).unwrap();
    let reason: String = db
        .query_row(
            "SELECT reason FROM run_attempts WHERE server_id = 1 AND outcome = 'failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(reason.contains("Invalid S3 credentials"), "{reason}");
    let dump: Vec<String> = db
        .prepare("SELECT COALESCE(reason,'') FROM run_attempts UNION ALL SELECT COALESCE(error,'') FROM backup_runs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!dump.iter().any(|t| t.contains("not-the-secret")), "{dump:?}");
}

fn a_server_dying_mid_upload_fails_over_and_leaves_nothing(rig: &Rig) {
    let mut ws = Workspace::new("midupload");
    let site = ws.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("media.bin"), random(12_000_000)).unwrap();
    ws.write_config(&site_toml("blog", &site));
    // Server 1 goes through a proxy that cuts each connection after 1 MB:
    // small requests pass, every part upload dies half-way.
    let proxy = cutting_proxy(&rig.endpoint, 1_000_000);
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([
        ("S3_SERVER_1_ENDPOINT".to_string(), proxy),
        ("SITEBACKUP_PART_RETRIES".to_string(), "2".to_string()),
    ]);
    ws.set_env(rig.server_env(2, &rig.buckets[1]));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["results"][0];
    assert_eq!(r["archive"]["server_id"], 2, "{report}");
    assert_eq!(r["attempts"][0]["outcome"], "failed", "{report}");
    let prefix = format!("{}/", ws.host_id);
    // Checked on Garage directly, not through the proxy.
    assert!(
        rig.data_keys(&rig.buckets[0], &prefix).is_empty(),
        "partial object on the dead server"
    );
    assert!(
        rig.pending_uploads(&rig.buckets[0], &prefix).is_empty(),
        "open upload on the dead server"
    );
    let rows = list_json(&ws, &["--all"]);
    let on_1: Vec<_> = rows.iter().filter(|r| r["server_id"] == 1).collect();
    assert_eq!(on_1.len(), 1, "one attempt on server 1: {rows:?}");
    assert_eq!(on_1[0]["status"], "failed", "{rows:?}");
    let complete: Vec<_> = rows.iter().filter(|r| r["status"] == "complete").collect();
    assert_eq!(complete.len(), 1);
    assert_eq!(complete[0]["server_id"], 2);
    // The archive on server 2 is whole: its checksum matches the catalog.
    let file = ws.path().join("dl.tar.zst");
    rig.download(&rig.buckets[1], complete[0]["key"].as_str().unwrap(), &file);
    assert_eq!(sha256_file(&file), complete[0]["sha256"].as_str().unwrap());
}

/// The limit crossed early in a multi-part upload: history makes the
/// estimate tiny (the site's last archive was a few hundred bytes), so the
/// server is tried, and the 30 MB archive crosses its 10 MB limit at the
/// second part. The upload stops there, long before half the archive has
/// gone out (bytes counted at a proxy), leaves nothing behind, and the
/// archive goes to the next server.
fn a_limit_crossed_mid_upload_stops_it_before_half_the_archive_is_sent(rig: &Rig) {
    use common::http_proxy::{Fault, HttpProxy};
    let mut ws = Workspace::new("midlimit");
    let site = ws.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.php"), b"<?php\n").unwrap();
    ws.write_config(&site_toml("blog", &site));
    let proxy = HttpProxy::start(&rig.endpoint, Fault::None);
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([
        ("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone()),
        ("S3_SERVER_1_STORAGE_LIMIT_GB".to_string(), "0.01".to_string()),
    ]);
    ws.set_env(rig.server_env(2, &rig.buckets[1]));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let small: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(small["results"][0]["archive"]["server_id"], 1, "{small}");
    assert!(small["results"][0]["archive"]["size_bytes"].as_u64().unwrap() < 10_000);

    std::fs::write(site.join("media.bin"), random(30_000_000)).unwrap();
    let seen_before = proxy.seen().len();
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["results"][0];
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{report}");
    assert_eq!(attempts[0]["outcome"], "failed", "{report}");
    assert!(
        attempts[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("Not enough space on"),
        "{report}"
    );
    assert_eq!(r["archive"]["server_id"], 2, "{report}");
    let size = r["archive"]["size_bytes"].as_u64().unwrap();
    assert!(size > 30_000_000, "{report}");

    let parts: Vec<usize> = proxy.seen()[seen_before..]
        .iter()
        .filter(|s| s.method == "PUT" && s.target.contains("partNumber="))
        .map(|s| s.body_len)
        .collect();
    let sent: usize = parts.iter().sum();
    assert!(!parts.is_empty(), "the upload to server 1 had begun");
    assert!(
        (sent as u64) < size / 2,
        "{sent} bytes in {} parts went to server 1 for a {size}-byte archive",
        parts.len()
    );
    // Server 1 holds only the first archive and its checksum: no part of
    // the second, no open upload.
    let prefix = format!("{}/", ws.host_id);
    let first = small["results"][0]["archive"]["key"].as_str().unwrap();
    let mut expected = vec![first.to_string(), format!("{first}.sha256")];
    expected.sort();
    let left: Vec<String> = rig
        .data_keys(&rig.buckets[0], &prefix)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, expected);
    assert!(rig.pending_uploads(&rig.buckets[0], &prefix).is_empty());
}
