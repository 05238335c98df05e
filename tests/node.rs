//! Node mode against a real `sitebackup master serve` (tests/common/master.rs)
//! with the rig's Garage as the master's providers: the real node CLI, the
//! master's API through curl, objects checked with `aws s3api`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::master::Master;
use common::*;
use std::path::Path;

/// A node workspace: `mode = "node"`, the master, the token file (0600).
fn node_workspace(name: &str, master: &Master, node_uuid: &str, token: &str, sites: &str) -> Workspace {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new(name);
    let token_file = ws.path().join("master.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_node_config(&ws, master, node_uuid, sites);
    ws
}

fn write_node_config(ws: &Workspace, master: &Master, node_uuid: &str, sites: &str) {
    std::fs::write(
        ws.path().join("config.toml"),
        format!(
            "host_id = \"{}\"\nstate_dir = \"{}\"\nmode = \"node\"\n\n[master]\nurl = \"{}\"\nnode_uuid = \"{node_uuid}\"\ntoken_file = \"{}\"\nretry_secs = 2\n\n{sites}",
            ws.host_id,
            ws.state_dir().display(),
            master.url,
            ws.path().join("master.token").display()
        ),
    )
    .unwrap();
}

fn site_toml(name: &str, path: &Path, extra: &str) -> String {
    format!("[[sites]]\nname = \"{name}\"\npath = \"{}\"\n{extra}\n", path.display())
}

fn backup_json(ws: &Workspace, site: &str) -> (i32, serde_json::Value, String) {
    let out = ws.cmd().args(["--json", "backup", site]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), v["results"][0].clone(), stderr(&out))
}

/// Every file under `dir`, read whole (lossy), for secret hunting.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn provider(master: &Master, id: i64) -> serde_json::Value {
    let (status, v) = master.api("GET", &format!("/api/v1/storage/providers/{id}"), None, None);
    assert_eq!(status, 200, "{v}");
    v
}

fn node_of<'a>(nodes: &'a serde_json::Value, uuid: &str) -> &'a serde_json::Value {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_uuid"] == uuid)
        .unwrap_or_else(|| panic!("node {uuid} not in {nodes}"))
}

/// The node's backup lands under `{node_uuid}/{site_uuid}/{site}_{stamp}`
/// on the master's default provider; the master's provider, node and site
/// usage grow by its size; and the provider's keys are nowhere on the
/// node's disk, logs or hook output.
#[test]
fn a_node_backup_lands_in_the_uuid_layout_and_leaves_no_secret() {
    let rig = Rig::get();
    let master = Master::start();
    let provider_id = master.add_provider("Garage one", &rig.endpoint, &rig.buckets[0], &rig, true);
    let (node_uuid, token) = master.add_node("web1");
    let probe = tempfile::tempdir().unwrap();
    let hook_env = probe.path().join("hook-env.txt");
    let ws0 = Workspace::new("node-layout-site");
    let site = ws0.make_site("site", 60_000);
    let ws = node_workspace(
        "node-layout",
        &master,
        &node_uuid,
        &token,
        &site_toml(
            "blog",
            &site,
            &format!("[sites.hooks]\nafter = [\"env > {}\"]\n", hook_env.display()),
        ),
    );

    let (code, r, log) = backup_json(&ws, "blog");
    assert_eq!(code, 0, "{r}\n{log}");
    let key = r["archive"]["key"].as_str().unwrap().to_string();
    let size = r["archive"]["size_bytes"].as_u64().unwrap();
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts.len(), 3, "{key}");
    assert_eq!(parts[0], node_uuid.as_str());
    assert!(
        parts[1].len() == 36 && parts[1].chars().filter(|c| *c == '-').count() == 4,
        "{key}"
    );
    let file = parts[2];
    assert!(
        file.starts_with("blog_") && file.ends_with(".tar.zst") && file.len() == "blog_20251227_082133.tar.zst".len(),
        "{key}"
    );
    assert!(
        rig.keys(&rig.buckets[0], &format!("{node_uuid}/"))
            .iter()
            .any(|(k, _)| k == &key)
    );

    // The master counted it: provider, node and site.
    let p = provider(&master, provider_id);
    assert_eq!(p["used_bytes"], size, "{p}");
    let (status, nodes) = master.api("GET", "/api/v1/nodes", None, None);
    assert_eq!(status, 200, "{nodes}");
    let node = node_of(&nodes, &node_uuid);
    assert_eq!(node["used_bytes"], size, "{node}");
    let site_row = node["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "blog")
        .unwrap();
    assert_eq!(site_row["site_uuid"], parts[1], "{site_row}");
    assert_eq!(site_row["used_bytes"], size, "{site_row}");

    // No secret on the node: state_dir (catalog, WAL, install id, spool),
    // the command's log output, the hook's environment.
    let mut haystack = all_text(&ws.state_dir());
    haystack.push_str(&log);
    haystack.push_str(&std::fs::read_to_string(&hook_env).unwrap());
    for secret in [&rig.secret_key, &rig.access_key] {
        assert!(
            !haystack.contains(secret.as_str()),
            "a provider key was found on the node"
        );
    }
    assert!(!haystack.contains(&token), "the node token was found in state or logs");
}

/// The default provider unreachable: the backup fails over to the master's
/// second provider. Then the default switched on the master: the next
/// backup goes to the new default, with no change on the node.
#[test]
fn node_backups_fail_over_and_follow_the_masters_default() {
    let rig = Rig::get();
    let master = Master::start();
    let dead = master.add_provider("dead", "http://127.0.0.1:1", &rig.buckets[0], &rig, true);
    let second = master.add_provider("second", &rig.endpoint, &rig.buckets[1], &rig, false);
    let (node_uuid, token) = master.add_node("web2");
    let ws0 = Workspace::new("node-failover-site");
    let site = ws0.make_site("site", 20_000);
    let ws = node_workspace(
        "node-failover",
        &master,
        &node_uuid,
        &token,
        &site_toml("blog", &site, ""),
    );

    let (code, r, log) = backup_json(&ws, "blog");
    assert_eq!(code, 0, "{r}\n{log}");
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], "failed", "{r}");
    assert_eq!(attempts[1]["outcome"], "succeeded", "{r}");
    let first_key = r["archive"]["key"].as_str().unwrap().to_string();
    let prefix = format!("{node_uuid}/");
    assert!(rig.keys(&rig.buckets[1], &prefix).iter().any(|(k, _)| k == &first_key));
    assert_eq!(provider(&master, second)["used_bytes"], r["archive"]["size_bytes"]);
    assert_eq!(provider(&master, dead)["used_bytes"], 0);

    // A third provider becomes the default on the master.
    let third = master.add_provider("third", &rig.endpoint, &rig.buckets[2], &rig, false);
    let (status, v) = master.api(
        "PATCH",
        &format!("/api/v1/storage/providers/{third}"),
        Some(&serde_json::json!({ "is_default": true })),
        None,
    );
    assert_eq!(status, 200, "{v}");
    let (code, r, log) = backup_json(&ws, "blog");
    assert_eq!(code, 0, "{r}\n{log}");
    let key = r["archive"]["key"].as_str().unwrap();
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "{r}");
    assert!(
        rig.keys(&rig.buckets[2], &prefix).iter().any(|(k, _)| k == key),
        "not on the new default"
    );
}

/// A quota the archive would exceed: the master refuses the lease, the
/// backup fails before anything is uploaded (exit 1) with the master's
/// numbers, and the on_error hook runs.
#[test]
fn a_quota_refusal_fails_the_backup_before_any_upload() {
    let rig = Rig::get();
    let master = Master::start();
    master.add_provider("one", &rig.endpoint, &rig.buckets[0], &rig, true);
    let (node_uuid, token) = master.add_node("web3");
    let ws0 = Workspace::new("node-quota-site");
    let site = ws0.make_site("site", 200_000);
    let marker = ws0.path().join("on-error-ran");
    let ws = node_workspace(
        "node-quota",
        &master,
        &node_uuid,
        &token,
        &site_toml(
            "blog",
            &site,
            &format!("[sites.hooks]\non_error = [\"touch {}\"]\n", marker.display()),
        ),
    );
    // Register the site (a sync), then give it a quota of 0.0001 GB.
    let out = ws.cmd().args(["--json", "node", "status"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let site_uuid = status["sites"][0]["site_uuid"].as_str().unwrap().to_string();
    let (code, v) = master.api(
        "PATCH",
        &format!("/api/v1/sites/{site_uuid}"),
        Some(&serde_json::json!({ "quota_gb": 0.0001 })),
        None,
    );
    assert_eq!(code, 200, "{v}");

    let (code, r, log) = backup_json(&ws, "blog");
    assert_eq!(code, 1, "{r}\n{log}");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("quota exceeded for site blog:"), "{error}");
    assert!(
        error.contains("GB used +") && error.contains("GB estimated >"),
        "{error}"
    );
    assert!(marker.exists(), "the on_error hook did not run");
    assert!(rig.data_keys(&rig.buckets[0], &format!("{node_uuid}/")).is_empty());
    assert!(
        rig.pending_uploads(&rig.buckets[0], &format!("{node_uuid}/"))
            .is_empty()
    );
}

/// A rebuilt node (empty state_dir, same node_uuid and token) restores an
/// archive by its key through a read lease.
#[test]
fn a_fresh_node_restores_by_key() {
    let rig = Rig::get();
    let master = Master::start();
    master.add_provider("one", &rig.endpoint, &rig.buckets[0], &rig, true);
    let (node_uuid, token) = master.add_node("web4");
    let ws0 = Workspace::new("node-restore-site");
    let site = ws0.make_site("site", 30_000);
    let ws = node_workspace(
        "node-restore",
        &master,
        &node_uuid,
        &token,
        &site_toml("blog", &site, ""),
    );
    let (code, r, log) = backup_json(&ws, "blog");
    assert_eq!(code, 0, "{r}\n{log}");
    let key = r["archive"]["key"].as_str().unwrap().to_string();

    let fresh = node_workspace(
        "node-restore-fresh",
        &master,
        &node_uuid,
        &token,
        &site_toml("blog", &site, ""),
    );
    let target = fresh.path().join("restored");
    let out = fresh
        .cmd()
        .args(["restore", &key, "--to"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read(target.join("files/index.php")).unwrap(),
        std::fs::read(site.join("index.php")).unwrap()
    );
}

/// The master stops while a node's upload is under way: the archive still
/// completes (the lease is in hand), its report waits in the outbox, and
/// the next sync after the master is back delivers it; the master counts
/// it once, even when it is reported again.
#[test]
fn a_report_waits_in_the_outbox_while_the_master_is_away() {
    use common::http_proxy::{Fault, HttpProxy};
    let rig = Rig::get();
    let mut master = Master::start();
    // The provider's endpoint is a proxy that slows each part down.
    let slow = HttpProxy::start(&rig.endpoint, Fault::DelayParts(std::time::Duration::from_millis(700)));
    let provider_id = master.add_provider("slow", &slow.url, &rig.buckets[0], &rig, true);
    let (node_uuid, token) = master.add_node("web5");
    let ws0 = Workspace::new("node-outbox-site");
    let site = ws0.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("media.bin"), random(16_000_000)).unwrap();
    let ws = node_workspace(
        "node-outbox",
        &master,
        &node_uuid,
        &token,
        &site_toml("blog", &site, ""),
    );

    let child = ws
        .spawn_cmd()
        .args(["--json", "backup", "blog"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !slow
        .seen()
        .iter()
        .any(|s| s.method == "PUT" && s.target.contains("partNumber="))
    {
        assert!(std::time::Instant::now() < deadline, "the upload never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    master.stop();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let size = v["results"][0]["archive"]["size_bytes"].as_u64().unwrap();
    let key = v["results"][0]["archive"]["key"].as_str().unwrap().to_string();
    assert!(
        rig.keys(&rig.buckets[0], &format!("{node_uuid}/"))
            .iter()
            .any(|(k, _)| k == &key)
    );

    let status = |ws: &Workspace| {
        let out = ws.cmd().args(["--json", "node", "status"]).output().unwrap();
        (
            out.status.code(),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        )
    };
    let (code, s) = status(&ws);
    assert_eq!(code, Some(1), "{s}");
    assert_eq!(s["reachable"], false, "{s}");
    assert_eq!(s["outbox"], 1, "{s}");

    master.serve();
    let (code, s) = status(&ws);
    assert_eq!(code, Some(0), "{s}");
    assert_eq!(s["outbox"], 0, "{s}");
    let p = provider(&master, provider_id);
    assert_eq!(
        (p["used_bytes"].as_u64(), p["archive_count"].as_u64()),
        (Some(size), Some(1)),
        "{p}"
    );
    // Reported again (idempotent by key): still counted once.
    let report = serde_json::json!({
        "key": key,
        "site_uuid": s["sites"][0]["site_uuid"],
        "provider_id": provider_id,
        "size_bytes": size,
        "sha256": v["results"][0]["archive"]["sha256"],
        "created_at": "2026-01-01T00:00:00Z",
    });
    let (code, ack) = master.api("POST", "/api/v1/node/archives", Some(&report), Some(&token));
    assert!(code == 200 || code == 201, "{ack}");
    assert_eq!(ack["changed"], false, "{ack}");
    assert_eq!(provider(&master, provider_id)["used_bytes"], size);
}

/// The node's token revoked on the master: a clear "token revoked or
/// invalid" error, exit 1.
#[test]
fn a_revoked_token_is_a_clear_error() {
    let rig = Rig::get();
    let master = Master::start();
    master.add_provider("one", &rig.endpoint, &rig.buckets[0], &rig, true);
    let (node_uuid, token) = master.add_node("web6");
    let ws0 = Workspace::new("node-revoked-site");
    let site = ws0.make_site("site", 1000);
    let ws = node_workspace(
        "node-revoked",
        &master,
        &node_uuid,
        &token,
        &site_toml("blog", &site, ""),
    );
    let out = master.cli(&["--json", "master", "token", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tokens: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["node_uuid"] == node_uuid.as_str())
        .unwrap_or_else(|| panic!("no token of the node in {tokens}"))["id"]
        .to_string();
    let out = master.cli(&["master", "token", "revoke", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("token revoked or invalid"), "{text}");
    assert!(!text.contains(&token), "the token was printed");
}

/// The node daemon: scheduled backups lease just in time, so the default
/// switched on the master takes effect at the next run with no restart;
/// STATUS= shows the last successful sync.
#[test]
fn the_node_daemon_follows_the_default_without_a_restart() {
    use common::daemon::{NotifySocket, poll, spawn_daemon};
    use std::time::Duration;
    let rig = Rig::get();
    let master = Master::start();
    master.add_provider("one", &rig.endpoint, &rig.buckets[0], &rig, true);
    let (node_uuid, token) = master.add_node("web7");
    let ws0 = Workspace::new("node-daemon-site");
    let site = ws0.make_site("site", 5_000);
    let ws = node_workspace(
        "node-daemon",
        &master,
        &node_uuid,
        &token,
        &site_toml("blog", &site, "schedule = \"*/3 * * * * *\""),
    );
    let notify = NotifySocket::new(ws.path());
    let _daemon = spawn_daemon(&ws, &notify, &[]);
    notify.wait_for("READY=1", 0, Duration::from_secs(30));
    let prefix = format!("{node_uuid}/");
    let archives = |bucket: &str| {
        rig.keys(bucket, &prefix)
            .into_iter()
            .filter(|(k, _)| k.ends_with(".tar.zst"))
            .count()
    };
    poll(
        "a scheduled archive on the first default",
        Duration::from_secs(60),
        || (archives(&rig.buckets[0]) >= 1).then_some(()),
    );
    notify.wait_for("Last sync:", 0, Duration::from_secs(60));

    let second = master.add_provider("two", &rig.endpoint, &rig.buckets[1], &rig, false);
    let (status, v) = master.api(
        "PATCH",
        &format!("/api/v1/storage/providers/{second}"),
        Some(&serde_json::json!({ "is_default": true })),
        None,
    );
    assert_eq!(status, 200, "{v}");
    poll(
        "a scheduled archive on the new default",
        Duration::from_secs(60),
        || (archives(&rig.buckets[1]) >= 1).then_some(()),
    );
}
