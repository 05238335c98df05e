//! Data safety (issue 12): no path deletes, hides or strands a good
//! archive. Real Garage, the real binary, checked with `aws s3api`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::http_proxy::{Fault, HttpProxy};
use common::*;

fn site_toml(name: &str, path: &std::path::Path) -> String {
    format!("[[sites]]\nname = \"{name}\"\npath = \"{}\"\n\n", path.display())
}

fn archives(rig: &Rig, bucket: &str, prefix: &str) -> Vec<String> {
    rig.keys(bucket, prefix)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.ends_with(".tar.zst"))
        .collect()
}

/// The reply to CompleteMultipartUpload is lost, but the server completed
/// the object: it is recorded complete on that server, with no second copy
/// elsewhere. (Before: the completion was retried, failed with
/// NoSuchUpload, the whole object was deleted and re-sent to server 2.)
#[test]
fn a_lost_completion_reply_keeps_the_stored_archive() {
    let rig = Rig::get();
    let mut ws = Workspace::new("lostreply");
    let site = ws.make_site("site", 7_000_000);
    ws.write_config(&site_toml("blog", &site));
    let proxy = HttpProxy::start(&rig.endpoint, Fault::DropFirstCompleteReply);
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone())]);
    ws.set_env(rig.server_env(2, &rig.buckets[1]));

    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["results"][0];
    assert_eq!(r["archive"]["server_id"], 1, "{report}");
    let dropped: Vec<_> = proxy.seen().into_iter().filter(|s| s.dropped).collect();
    assert_eq!(dropped.len(), 1, "the proxy withheld one completion reply");
    assert!(dropped[0].target.contains("uploadId="), "{dropped:?}");

    let prefix = format!("{}/", ws.host_id);
    let on_1 = archives(&rig, &rig.buckets[0], &prefix);
    assert_eq!(on_1.len(), 1, "{on_1:?}");
    assert_eq!(on_1[0], r["archive"]["key"].as_str().unwrap());
    assert!(
        archives(&rig, &rig.buckets[1], &prefix).is_empty(),
        "a second copy on server 2"
    );
    let rows = list_json(&ws, &["--all"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "complete");
    assert_eq!(rows[0]["server_id"], 1);
    // The recorded checksum is the stored object's.
    let file = ws.path().join("got.tar.zst");
    rig.download(&rig.buckets[0], &on_1[0], &file);
    assert_eq!(rows[0]["sha256"], sha256_file(&file).as_str());
}

/// A disk cloned to a second machine keeps the host name, hence the
/// host_id: the clone gets its own install id (the machine id differs), its
/// backup is refused naming both installations, and its reconcile touches
/// nothing of the original's.
#[test]
fn a_cloned_host_cannot_touch_the_originals_archives() {
    let rig = Rig::get();
    let bucket = rig.buckets[0].clone();
    let mut original = Workspace::new("clone-a");
    let site = original.make_site("site", 50_000);
    std::fs::write(original.path().join("machine-id"), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n").unwrap();
    original.write_config(&site_toml("blog", &site));
    original.set_env(rig.server_env(1, &bucket));
    original.set_env([(
        "SITEBACKUP_MACHINE_ID_FILE".to_string(),
        original.path().join("machine-id").display().to_string(),
    )]);
    for _ in 0..2 {
        let out = original.cmd().args(["backup", "blog"]).output().unwrap();
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    }
    let prefix = format!("{}/", original.host_id);
    let before = rig.keys(&bucket, &prefix);
    assert_eq!(archives(&rig, &bucket, &prefix).len(), 2);

    // The clone: a copy of the state directory, the same host_id, another
    // machine id.
    let mut clone = Workspace::new("clone-b");
    clone.host_id = original.host_id.clone();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(original.state_dir())
        .arg(clone.state_dir())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(clone.path().join("machine-id"), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n").unwrap();
    clone.write_config(&format!(
        "{}[sites.retention]\nkeep_last = 1\n",
        site_toml("blog", &site)
    ));
    clone.set_env(rig.server_env(1, &bucket));
    clone.set_env([(
        "SITEBACKUP_MACHINE_ID_FILE".to_string(),
        clone.path().join("machine-id").display().to_string(),
    )]);

    let out = clone.cmd().args(["backup", "blog"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    for needle in [
        "belongs to another installation",
        "set a distinct host_id",
        "reconcile --adopt",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let a: serde_json::Value =
        serde_json::from_slice(&std::fs::read(original.state_dir().join("install-id.json")).unwrap()).unwrap();
    let b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(clone.state_dir().join("install-id.json")).unwrap()).unwrap();
    assert_ne!(a["install_id"], b["install_id"], "the clone has its own install id");
    assert!(
        err.contains(a["install_id"].as_str().unwrap()) && err.contains(b["install_id"].as_str().unwrap()),
        "{err}"
    );

    let out = clone.cmd().args(["reconcile"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("belongs to another installation"),
        "{}",
        stdout(&out)
    );

    // The cloned catalog lists the original's two archives; keep_last = 1
    // plans to remove the older, but its metadata names the original.
    let out = clone.cmd().args(["--json", "prune"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("written by another installation"),
        "{}",
        stdout(&out)
    );
    assert_eq!(rig.keys(&bucket, &prefix), before, "nothing changed in the bucket");
}

/// Changing host_id does not make the archives under the old prefix look
/// missing: reconcile lists every prefix that has rows. (Before: rows were
/// compared with a listing of the current prefix only, and all marked
/// `missing`.)
#[test]
fn a_new_host_id_keeps_the_old_archives_present() {
    let rig = Rig::get();
    let bucket = rig.buckets[0].clone();
    let mut ws = Workspace::new("hostid");
    let site = ws.make_site("site", 20_000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &bucket));
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let old = list_json(&ws, &[]);
    assert_eq!(old.len(), 1);

    ws.host_id = format!("{}-renamed", ws.host_id);
    ws.write_config(&site_toml("blog", &site));
    let out = ws.cmd().args(["--json", "reconcile"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing: Vec<&serde_json::Value> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["plan"]["missing"].as_array().unwrap().iter())
        .collect();
    assert!(missing.is_empty(), "{v}");
    let rows = list_json(&ws, &["--all"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "complete", "{rows:?}");
    assert_eq!(rows[0]["key"], old[0]["key"]);
}
