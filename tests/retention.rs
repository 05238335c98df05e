//! Retention never trades a good archive for a bad one (issue 12, item 2),
//! through the real binary: suspect archives (an emptied or shrunken site)
//! and corrupt ones (damage proven by `verify`) fill no keep slot; a
//! failed download is not damage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn site_toml(path: &Path, keep_last: u32) -> String {
    format!(
        "[[sites]]\nname = \"blog\"\npath = \"{}\"\n\n[sites.retention]\nkeep_last = {keep_last}\n",
        path.display()
    )
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

/// `backup --json blog`: the site's result, after checking the exit code
/// (0 for a clean archive, 3 for one stored with warnings, such as a
/// suspect one).
fn backup(ws: &Workspace) -> serde_json::Value {
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    let result = json_of(&out)["results"][0].clone();
    let expected = if result["outcome"] == "warning" { 3 } else { 0 };
    assert_eq!(out.status.code(), Some(expected), "{}\n{}", stdout(&out), stderr(&out));
    result
}

fn row_of(ws: &Workspace, id: i64) -> serde_json::Value {
    list_json(ws, &["--all"])
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row {id}"))
}

fn ids(list: &serde_json::Value) -> Vec<i64> {
    let mut v: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    v.sort_unstable();
    v
}

fn empty_dir(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

#[test]
fn an_emptied_site_gives_a_suspect_archive_that_never_pushes_out_the_clean_one() {
    let rig = Rig::get();
    let mut ws = Workspace::new("suspect-empty");
    let site = ws.make_site("site", 200_000);
    ws.write_config(&site_toml(&site, 1));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let prefix = format!("{}/", ws.host_id);

    let clean = backup(&ws);
    assert_eq!(clean["outcome"], "success", "{clean}");
    assert!(clean["suspect"].is_null(), "{clean}");
    let clean_id = clean["archive"]["id"].as_i64().unwrap();
    let clean_key = clean["archive"]["key"].as_str().unwrap().to_string();

    // The volume "is not mounted": the directory is there, but empty.
    empty_dir(&site);
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "stored, with a warning (exit 3), not a failure: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("site directory is empty — is the volume mounted?"),
        "{text}"
    );
    let rows = list_json(&ws, &[]);
    assert_eq!(rows.len(), 2, "the suspect archive is stored: {rows:?}");
    let suspect = rows.iter().find(|r| r["id"] != clean_id).unwrap().clone();
    let suspect_id = suspect["id"].as_i64().unwrap();
    assert_eq!(suspect["status"], "complete", "{suspect}");
    assert_eq!(suspect["condition"], "suspect", "{suspect}");
    assert_eq!(suspect["suspect"], "empty_site", "{suspect}");
    assert!(
        suspect["suspect_reason"]
            .as_str()
            .unwrap()
            .contains("is the volume mounted?"),
        "{suspect}"
    );
    assert_eq!(row_of(&ws, clean_id)["condition"], "clean");
    let human = ws.cmd().arg("list").output().unwrap();
    assert!(
        stdout(&human).contains("suspect: site directory is empty"),
        "{}",
        stdout(&human)
    );

    // The run itself is recorded as a warning with the cause.
    let again = backup(&ws);
    assert_eq!(again["outcome"], "warning", "{again}");
    assert_eq!(again["suspect"], "empty_site", "{again}");
    let warnings = again["warnings"].to_string();
    assert!(
        warnings.contains("site directory is empty — is the volume mounted?"),
        "{warnings}"
    );
    let second_suspect = again["archive"]["id"].as_i64().unwrap();

    // keep_last = 1: the suspect archives fill no slot, so the clean one is
    // kept; they stay too while they are newer than every clean archive.
    let out = ws.cmd().args(["--json", "prune"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let plan = &json_of(&out)["sites"][0];
    assert_eq!(ids(&plan["keep"]), [clean_id, suspect_id, second_suspect], "{plan}");
    assert!(ids(&plan["remove"]).is_empty(), "{plan}");
    let keys: Vec<String> = rig.keys(&rig.buckets[0], &prefix).into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&clean_key), "the clean archive is still stored: {keys:?}");

    // The volume is back: a clean archive follows, and only then do the
    // older archives go (the suspect ones with it).
    ws.make_site("site", 200_000);
    let back = backup(&ws);
    assert_eq!(back["outcome"], "success", "{back}");
    let back_id = back["archive"]["id"].as_i64().unwrap();
    let out = ws.cmd().args(["--json", "prune"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let plan = &json_of(&out)["sites"][0];
    assert_eq!(ids(&plan["keep"]), [back_id], "{plan}");
    assert_eq!(ids(&plan["remove"]), [clean_id, suspect_id, second_suspect], "{plan}");
}

#[test]
fn a_shrunken_archive_is_suspect_below_the_configured_share() {
    let mut ws = Workspace::new("suspect-shrunk");
    let site = ws.make_site("site", 1_000_000);
    let store = ws.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    ws.write_config(&format!(
        "[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n\n{}",
        store.display(),
        site_toml(&site, 1)
    ));
    let big = backup(&ws);
    assert_eq!(big["outcome"], "success", "{big}");

    // The share is configurable; 0 turns the size check off.
    let percent = "SITEBACKUP_SUSPECT_BELOW_PERCENT".to_string();
    ws.set_env([(percent.clone(), "0".to_string())]);
    std::fs::remove_dir_all(site.join("wp-content")).unwrap();
    let unchecked = backup(&ws);
    assert_eq!(unchecked["outcome"], "success", "{unchecked}");
    ws.env.remove(&percent);
    let uploads = site.join("wp-content/uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("photo.bin"), random(1_000_000)).unwrap();
    let big = backup(&ws);
    assert_eq!(big["outcome"], "success", "growth is fine: {big}");
    let big_size = big["archive"]["size_bytes"].as_u64().unwrap();

    // Most of the site vanished: a few hundred bytes instead of a megabyte,
    // under the default 10 %.
    std::fs::remove_dir_all(site.join("wp-content")).unwrap();
    let small = backup(&ws);
    assert_eq!(small["outcome"], "warning", "{small}");
    assert_eq!(small["suspect"], "shrunk", "{small}");
    let small_size = small["archive"]["size_bytes"].as_u64().unwrap();
    let warnings = small["warnings"].to_string();
    assert!(
        warnings.contains(&format!("({small_size} bytes)")) && warnings.contains(&format!("({big_size} bytes)")),
        "the warning names both sizes: {warnings}"
    );
    assert!(warnings.contains("less than 10 %"), "{warnings}");
    let row = row_of(&ws, small["archive"]["id"].as_i64().unwrap());
    assert_eq!(
        (&row["condition"], &row["suspect"]),
        (&"suspect".into(), &"shrunk".into())
    );

    ws.set_env([("SITEBACKUP_SUSPECT_BELOW_PERCENT".to_string(), "250".to_string())]);
    let out = ws.cmd().args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("upload.suspect_below_percent") && text.contains("SITEBACKUP_SUSPECT_BELOW_PERCENT"),
        "{text}"
    );
}

/// A TCP proxy to `upstream` that can be switched off: while down, it
/// accepts and at once closes every connection (a dead server). Lives until
/// the test process exits.
struct SwitchProxy {
    url: String,
    down: Arc<AtomicBool>,
}

impl SwitchProxy {
    fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let is_down = down.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if is_down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Self { url, down }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[test]
fn a_corrupt_archive_is_pruned_and_reported_but_a_failed_download_is_not_corruption() {
    let rig = Rig::get();
    let proxy = SwitchProxy::start(&rig.endpoint);
    let mut ws = Workspace::new("corrupt-prune");
    // Incompressible content: a flipped byte still decodes, so only the
    // checksum can catch it.
    let site = ws.make_site("site", 600_000);
    ws.write_config(&site_toml(&site, 1));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone())]);
    let prefix = format!("{}/", ws.host_id);

    let older = backup(&ws);
    let newer = backup(&ws);
    let (older_id, newer_id) = (
        older["archive"]["id"].as_i64().unwrap(),
        newer["archive"]["id"].as_i64().unwrap(),
    );
    let (older_key, newer_key) = (
        older["archive"]["key"].as_str().unwrap().to_string(),
        newer["archive"]["key"].as_str().unwrap().to_string(),
    );

    // Damage the newest archive on the server itself.
    let file = ws.path().join("object.tar.zst");
    rig.download(&rig.buckets[0], &newer_key, &file);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    rig.upload(&rig.buckets[0], &newer_key, &file);

    let verify = |id: i64| {
        let out = ws.cmd().args(["--json", "verify", &id.to_string()]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
        json_of(&out)["results"][0].clone()
    };
    let v = verify(newer_id);
    assert_eq!(v["outcome"], "corrupt", "{v}");
    assert!(v["error"].as_str().unwrap().contains("checksum mismatch"), "{v}");
    let row = row_of(&ws, newer_id);
    assert_eq!(
        (&row["condition"], &row["verify"]),
        (&"corrupt".into(), &"corrupt".into()),
        "{row}"
    );
    let human = ws.cmd().arg("list").output().unwrap();
    assert!(
        stdout(&human).contains("corrupt: checksum mismatch"),
        "{}",
        stdout(&human)
    );

    // The server dies: verifying the good archive fails, but proves
    // nothing; nor does it clear the damage found on the other one.
    proxy.set_down(true);
    let v = verify(older_id);
    assert_eq!(v["outcome"], "inconclusive", "{v}");
    let v = verify(newer_id);
    assert_eq!(v["outcome"], "inconclusive", "{v}");
    proxy.set_down(false);
    let row = row_of(&ws, older_id);
    assert_eq!(
        (&row["condition"], &row["verify"]),
        (&"clean".into(), &"inconclusive".into()),
        "{row}"
    );
    assert_eq!(row_of(&ws, newer_id)["condition"], "corrupt");

    // keep_last = 1: the corrupt archive fills no slot, so the good one is
    // kept and the corrupt one removed, and reported.
    let out = ws.cmd().args(["--json", "prune", "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let plan = &json_of(&out)["sites"][0];
    assert_eq!(ids(&plan["keep"]), [older_id], "{plan}");
    assert_eq!(ids(&plan["remove"]), [newer_id], "{plan}");
    assert_eq!(plan["corrupt"], serde_json::json!([newer_id]), "{plan}");
    assert_eq!(plan["remove"][0]["condition"], "corrupt", "{plan}");

    let out = ws.cmd().arg("prune").output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("blog: keep 1, remove 1 (1 corrupt)"), "{text}");
    let removed = text.lines().find(|l| l.contains(&newer_key)).unwrap_or_default();
    assert!(
        removed.contains("remove") && removed.contains("CORRUPT") && removed.contains("→ deleted"),
        "{text}"
    );
    let keys: Vec<String> = rig.keys(&rig.buckets[0], &prefix).into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&older_key), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.starts_with(&newer_key)),
        "the corrupt object and its sidecar are gone: {keys:?}"
    );
    assert_eq!(row_of(&ws, newer_id)["status"], "deleted");
    assert_eq!(row_of(&ws, older_id)["status"], "complete");
}

/// What `prune` may change, read with independent tools: the keys under
/// the prefix on each bucket (`aws`), the archive rows (SQLite) and the
/// usage `servers --json` reports.
#[derive(Debug, PartialEq)]
struct World {
    keys: Vec<Vec<String>>,
    rows: Vec<(i64, String)>,
    usage: u64,
}

fn world(rig: &Rig, ws: &Workspace, buckets: &[&str]) -> World {
    let prefix = format!("{}/", ws.host_id);
    let keys = buckets
        .iter()
        .map(|b| rig.keys(b, &prefix).into_iter().map(|(k, _)| k).collect())
        .collect();
    let db = rusqlite::Connection::open(ws.state_dir().join("catalog.db")).unwrap();
    let rows = db
        .prepare("SELECT id, status FROM s3_archives ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let out = ws.cmd().args(["--json", "servers"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let servers = json_of(&out)["servers"].clone();
    assert_eq!(servers.as_array().unwrap().len(), 1, "{servers}");
    World {
        keys,
        rows,
        usage: servers[0]["usage_bytes"].as_u64().unwrap(),
    }
}

/// `prune` through the binary, keep_last = 1 over three backups, plus one
/// older archive on a server that is no longer configured. `--dry-run`
/// changes nothing; `prune` deletes the two older objects **and** their
/// `.sha256` sidecars, marks their rows `deleted` and lowers the usage,
/// and leaves the archive on the unconfigured server in place, saying so
/// (exit 1).
#[test]
fn prune_deletes_objects_and_sidecars_marks_rows_and_lowers_usage_but_not_with_dry_run() {
    let rig = Rig::get();
    let mut ws = Workspace::new("prune-cli");
    let site = ws.make_site("site", 300_000);
    ws.write_config(&site_toml(&site, 1));
    let (gone, kept) = (rig.buckets[2].as_str(), rig.buckets[0].as_str());
    // The oldest archive goes to a bucket that is then dropped from the
    // configuration (server 1 now means another bucket).
    ws.set_env(rig.server_env(1, gone));
    let orphan = backup(&ws)["archive"].clone();
    ws.set_env(rig.server_env(1, kept));
    let archives: Vec<serde_json::Value> = (0..3).map(|_| backup(&ws)["archive"].clone()).collect();
    let key = |a: &serde_json::Value| a["key"].as_str().unwrap().to_string();
    let id = |a: &serde_json::Value| a["id"].as_i64().unwrap();

    let before = world(&rig, &ws, &[kept, gone]);
    assert_eq!(before.keys[0].len(), 7, "marker + 3 archives + 3 sidecars: {before:?}");
    for a in &archives {
        assert!(before.keys[0].contains(&format!("{}.sha256", key(a))), "{before:?}");
    }
    assert!(before.keys[1].contains(&key(&orphan)), "{before:?}");
    assert_eq!(before.rows.len(), 4, "{before:?}");
    assert!(before.rows.iter().all(|(_, s)| s == "complete"), "{before:?}");
    let sizes: Vec<u64> = archives.iter().map(|a| a["size_bytes"].as_u64().unwrap()).collect();
    assert_eq!(before.usage, sizes.iter().sum::<u64>());

    let out = ws.cmd().args(["--json", "prune", "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let plan = &json_of(&out)["sites"][0];
    assert_eq!(ids(&plan["keep"]), [id(&archives[2])], "{plan}");
    assert_eq!(
        ids(&plan["remove"]),
        [id(&orphan), id(&archives[0]), id(&archives[1])],
        "{plan}"
    );
    assert_eq!(world(&rig, &ws, &[kept, gone]), before, "--dry-run changed something");

    let out = ws.cmd().arg("prune").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "one archive could not be removed: {text}");
    let orphan_line = text.lines().find(|l| l.contains(&key(&orphan))).unwrap_or_default();
    assert!(
        orphan_line.contains("FAILED") && orphan_line.contains("no longer configured"),
        "{text}"
    );
    let after = world(&rig, &ws, &[kept, gone]);
    let newest = key(&archives[2]);
    let mut expected = vec![
        format!("{}/.sitebackup-owner", ws.host_id),
        newest.clone(),
        format!("{newest}.sha256"),
    ];
    expected.sort();
    assert_eq!(
        after.keys[0], expected,
        "objects and sidecars of the pruned archives are gone"
    );
    assert_eq!(after.keys[1], before.keys[1], "the unconfigured server was touched");
    let status_of = |a: &serde_json::Value| after.rows.iter().find(|(i, _)| *i == id(a)).unwrap().1.clone();
    assert_eq!(status_of(&archives[0]), "deleted");
    assert_eq!(status_of(&archives[1]), "deleted");
    assert_eq!(status_of(&archives[2]), "complete");
    assert_eq!(status_of(&orphan), "complete", "left in place, still recorded");
    assert_eq!(after.usage, sizes[2], "usage counts only the kept archive");
}
