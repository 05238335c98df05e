//! `reconcile` end to end against both S3 servers of the rig (Garage, and
//! s3s-fs, which cannot list open uploads; see `per_server!`): a host that
//! lost its catalog gets it back from the bucket, leftovers are cleaned,
//! drift is corrected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use sitebackup::storage::Target;
use std::collections::BTreeMap;

per_server!(
    reconcile_rebuilds_a_lost_catalog_and_cleans_the_bucket,
    a_server_that_cannot_be_listed_is_reported_and_its_rows_are_left_alone,
    a_listing_longer_than_one_page_is_followed_to_its_end,
);

fn site_toml(name: &str, path: &std::path::Path) -> String {
    format!("[[sites]]\nname = \"{name}\"\npath = \"{}\"\n\n", path.display())
}

fn run_json(ws: &Workspace, args: &[&str]) -> serde_json::Value {
    let out = ws.cmd().arg("--json").args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}\n{}", stdout(&out), stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rows_by_key(ws: &Workspace) -> BTreeMap<String, serde_json::Value> {
    run_json(ws, &["list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn reconcile_rebuilds_a_lost_catalog_and_cleans_the_bucket(rig: &Rig) {
    let bucket = rig.buckets[0].clone();
    let mut ws = Workspace::new("reconcile");
    let blog = ws.make_site("blog-site", 100_000);
    let shop = ws.make_site("shop-site", 50_000);
    ws.write_config(&format!("{}{}", site_toml("blog", &blog), site_toml("shop", &shop)));
    ws.set_env(rig.server_env(1, &bucket));
    let out = ws.cmd().args(["backup", "--all"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let original = rows_by_key(&ws);
    assert_eq!(original.len(), 2);
    let prefix = format!("{}/", ws.host_id);
    let sizes: BTreeMap<String, u64> = rig
        .keys(&bucket, &prefix)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".tar.zst"))
        .collect();
    assert_eq!(sizes.len(), 2);

    // Leftovers: a checksum file whose archive is gone, an object that is
    // not an archive, and an open multipart upload under the prefix.
    let small = ws.path().join("small.txt");
    std::fs::write(&small, format!("{}  gone.tar.zst\n", "0".repeat(64))).unwrap();
    let orphan = format!("{prefix}2024/01/01/gone-backup-20240101-000000.tar.zst.sha256");
    let notes = format!("{prefix}notes.txt");
    rig.upload(&bucket, &orphan, &small);
    rig.upload(&bucket, &notes, &small);
    let open_key = format!("{prefix}2024/01/02/blog-backup-20240102-000000.tar.zst");
    rig.s3api(&["create-multipart-upload", "--bucket", &bucket, "--key", &open_key]);
    assert_eq!(rig.pending_uploads(&bucket, &prefix), vec![open_key.clone()]);

    // The host lost its catalog: same host id, empty state directory.
    let mut fresh = Workspace::new("reconcile-fresh");
    fresh.host_id = ws.host_id.clone();
    fresh.write_config("");
    fresh.set_env(rig.server_env(1, &bucket));

    // A new installation (empty state directory) does not take another's
    // prefix without being told to.
    let out = fresh.cmd().args(["reconcile"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("belongs to another installation") && stdout(&out).contains("reconcile --adopt"),
        "{}",
        stdout(&out)
    );
    assert!(rows_by_key(&fresh).is_empty());
    assert_eq!(rig.pending_uploads(&bucket, &prefix), vec![open_key.clone()]);

    let v = run_json(&fresh, &["reconcile", "--adopt", "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    let server = &v["servers"][0];
    assert!(server["applied"].is_null(), "{v}");
    let plan = &server["plan"];
    let imports = plan["imports"].as_array().unwrap();
    assert_eq!(imports.len(), 2, "{v}");
    for i in imports {
        let key = i["key"].as_str().unwrap();
        let row = &original[key];
        assert_eq!(i["size_bytes"], sizes[key], "{v}");
        assert_eq!(i["sha256"], row["sha256"], "{v}");
        assert_eq!(i["site"], row["site"], "{v}");
    }
    // Open uploads: aborted where the server lists them; s3s-fs cannot,
    // and nobody recorded this one, so it is reported and left.
    let open_left: Vec<String> = if rig.lists_uploads() {
        assert_eq!(plan["aborts"][0]["key"], open_key.as_str(), "{v}");
        assert_eq!(plan["open_uploads"], "listed", "{v}");
        vec![]
    } else {
        assert_eq!(plan["aborts"], serde_json::json!([]), "{v}");
        assert_eq!(plan["open_uploads"], "not_listable", "{v}");
        vec![open_key.clone()]
    };
    assert_eq!(plan["orphan_sidecars"], serde_json::json!([orphan]), "{v}");
    assert_eq!(plan["unrecognised"], serde_json::json!([notes]), "{v}");
    assert_eq!(plan["usage_after_bytes"], sizes.values().sum::<u64>());

    // A dry run changes nothing, anywhere.
    assert!(rows_by_key(&fresh).is_empty());
    assert_eq!(rig.pending_uploads(&bucket, &prefix), vec![open_key.clone()]);
    assert!(rig.keys(&bucket, &prefix).iter().any(|(k, _)| *k == orphan));
    let out = fresh
        .cmd()
        .args(["reconcile", "--adopt", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("  import   "), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).contains("open uploads: not listable on this server"),
        !rig.lists_uploads(),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("Dry run: nothing was changed"),
        "{}",
        stdout(&out)
    );
    assert!(rows_by_key(&fresh).is_empty());

    // Apply: adopt the prefix, then import.
    let v = run_json(&fresh, &["reconcile", "--adopt"]);
    let applied = &v["servers"][0]["applied"];
    assert_eq!(applied["errors"], serde_json::json!([]), "{v}");
    assert_eq!(applied["changes"], 3 + u64::from(open_left.is_empty()), "{v}");
    assert_eq!(applied["usage_bytes"], sizes.values().sum::<u64>(), "{v}");
    let rebuilt = rows_by_key(&fresh);
    assert_eq!(rebuilt.keys().collect::<Vec<_>>(), original.keys().collect::<Vec<_>>());
    for (key, row) in &rebuilt {
        let before = &original[key];
        assert_eq!(row["status"], "complete", "{row}");
        assert_eq!(row["size_bytes"], sizes[key], "{row}");
        assert_eq!(row["sha256"], before["sha256"], "{row}");
        assert_eq!(row["site"], before["site"], "{row}");
        assert_eq!(row["created_at"], before["created_at"], "{row}");
        assert_eq!(row["server_id"], 1);
    }
    assert_eq!(
        rig.pending_uploads(&bucket, &prefix),
        open_left,
        "the open upload is aborted where listed"
    );
    let keys: Vec<String> = rig.keys(&bucket, &prefix).into_iter().map(|(k, _)| k).collect();
    assert!(!keys.contains(&orphan), "orphan checksum file deleted");
    assert!(keys.contains(&notes), "unknown objects are left alone");
    let out = fresh.cmd().arg("servers").output().unwrap();
    let usage = format!("Usage: {:.2} MB", sizes.values().sum::<u64>() as f64 / 1e6);
    assert!(stdout(&out).contains(&usage), "{}", stdout(&out));

    // The previous owner may no longer write under the prefix: its backup
    // is refused as a configuration error naming both installations.
    let out = ws.cmd().args(["backup", "--all"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    for needle in [
        "belongs to another installation",
        "set a distinct host_id",
        "reconcile --adopt",
    ] {
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    assert_eq!(rig.pending_uploads(&bucket, &prefix), open_left);

    // The imported rows verify and restore by id like any other.
    let id = rebuilt.values().next().unwrap()["id"].to_string();
    let out = fresh.cmd().args(["verify", &id]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let blog_row = rebuilt.values().find(|r| r["site"] == "blog").unwrap();
    let restored = fresh.path().join("restored");
    let out = fresh
        .cmd()
        .args(["restore", &blog_row["id"].to_string(), "--to"])
        .arg(&restored)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let photo = "wp-content/uploads/2024/photo.bin";
    assert_eq!(
        std::fs::read(restored.join("files").join(photo)).unwrap(),
        std::fs::read(blog.join(photo)).unwrap()
    );

    // Now catalog and bucket agree.
    let v = run_json(&fresh, &["reconcile", "--dry-run"]);
    let plan = &v["servers"][0]["plan"];
    for list in ["imports", "missing", "size_mismatches", "aborts", "orphan_sidecars"] {
        // (On s3s-fs the unlisted open upload is not in `aborts` either.)
        assert_eq!(plan[list], serde_json::json!([]), "{list}: {v}");
    }

    // Drift: one archive deleted behind our back, the other replaced.
    let mut keys = original.keys();
    let (gone, changed) = (keys.next().unwrap().clone(), keys.next().unwrap().clone());
    rig.s3api(&["delete-object", "--bucket", &bucket, "--key", &gone]);
    let bigger = ws.path().join("bigger.bin");
    std::fs::write(&bigger, random(sizes[&changed] as usize + 1234)).unwrap();
    rig.upload(&bucket, &changed, &bigger);
    let v = run_json(&fresh, &["reconcile"]);
    let plan = &v["servers"][0]["plan"];
    assert_eq!(plan["missing"][0]["key"], gone.as_str(), "{v}");
    assert_eq!(plan["size_mismatches"][0]["key"], changed.as_str(), "{v}");
    assert_eq!(
        plan["size_mismatches"][0]["server_bytes"],
        sizes[&changed] + 1234,
        "{v}"
    );
    let rows = rows_by_key(&fresh);
    assert_eq!(rows[&gone]["status"], "missing");
    assert_eq!(rows[&changed]["size_bytes"], sizes[&changed] + 1234);
    assert_eq!(v["servers"][0]["applied"]["usage_bytes"], sizes[&changed] + 1234);
    // The checksum file of the deleted archive is now an orphan.
    assert_eq!(
        plan["orphan_sidecars"],
        serde_json::json!([format!("{gone}.sha256")]),
        "{v}"
    );
}

fn a_server_that_cannot_be_listed_is_reported_and_its_rows_are_left_alone(rig: &Rig) {
    let mut ws = Workspace::new("reconcile-denied");
    let site = ws.make_site("site", 10_000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Same endpoint and bucket as the row, but the listing is refused.
    ws.set_env([("S3_SERVER_1_SECRET_KEY".to_string(), "0".repeat(64))]);
    let out = ws.cmd().args(["--json", "reconcile"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = v["servers"][0]["error"].as_str().unwrap();
    assert!(error.contains("Invalid S3 credentials"), "{v}");
    assert!(!error.contains(&"0".repeat(64)), "no secret in errors");
    let rows = run_json(&ws, &["list", "--all"]);
    assert_eq!(
        rows[0]["status"], "complete",
        "rows are not marked missing on a listing error"
    );
}

/// More than one page of `ListObjectsV2` (Garage, like S3, answers at most
/// 1,000 keys a page): 1,001 small archives under the prefix, each with a
/// `complete` row. `list()` must follow the continuation token to the end,
/// and reconcile, which marks rows `missing` from that listing, must find
/// every one of them, the keys of the second page included.
fn a_listing_longer_than_one_page_is_followed_to_its_end(rig: &Rig) {
    use futures::StreamExt;
    use sitebackup::catalog::{Catalog, ImportedArchive};
    use sitebackup::layout::ServerRef;
    const N: usize = 1_001;
    const BODY: &[u8] = b"a small stand-in archive\n";
    let bucket = rig.buckets[3].clone();
    let mut ws = Workspace::new("pages");
    let site = ws.make_site("site", 1000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &bucket));
    // The owner marker, the installation and a first archive.
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let first = run_json(&ws, &["list"])[0].clone();
    let location = ServerRef::new(first["endpoint"].as_str().unwrap(), first["bucket"].as_str().unwrap());
    let prefix = format!("{}/", ws.host_id);

    // The objects, uploaded in parallel; one a second from midnight.
    let keys: Vec<String> = (0..N)
        .map(|i| {
            let (h, m, s) = (i / 3600, i / 60 % 60, i % 60);
            format!("{prefix}2020/01/01/blog-backup-20200101-{h:02}{m:02}{s:02}.tar.zst")
        })
        .collect();
    let server = rig.server_config(1, &bucket);
    let store = Target::from_config(&server, &Default::default(), 0).store().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uploads: Vec<_> = rt.block_on(
        futures::stream::iter(keys.clone())
            .map(|k| {
                let store = store.clone();
                async move { store.put_small(&k, bytes::Bytes::from_static(BODY)).await }
            })
            .buffer_unordered(16)
            .collect(),
    );
    assert!(
        uploads.iter().all(Result::is_ok),
        "{:?}",
        uploads.iter().find(|r| r.is_err())
    );
    let catalog = Catalog::open(&ws.state_dir()).unwrap();
    for (i, key) in keys.iter().enumerate() {
        catalog
            .import_archive(&ImportedArchive {
                site: "blog".into(),
                server_id: 1,
                location: location.clone(),
                key: key.clone(),
                size_bytes: BODY.len() as u64,
                sha256: None,
                created_at: format!("2020-01-01T{:02}:{:02}:{:02}Z", i / 3600, i / 60 % 60, i % 60),
            })
            .unwrap();
    }
    drop(catalog);

    // Reconcile finds them all: nothing missing, nothing to import.
    let v = run_json(&ws, &["reconcile"]);
    let plan = &v["servers"][0]["plan"];
    for list in ["missing", "imports", "size_mismatches"] {
        let found = plan[list].as_array().unwrap();
        assert!(
            found.is_empty(),
            "{list}: {} entries, first {:?}",
            found.len(),
            found.first()
        );
    }
    // Every key, per an independent client (which pages by itself) …
    let on_server: Vec<String> = rig.keys(&bucket, &prefix).into_iter().map(|(k, _)| k).collect();
    assert_eq!(on_server.len(), N + 3, "marker, first archive and its sidecar too");
    // … and per `list()`, in the same order.
    let listed: Vec<String> = rt
        .block_on(store.list(&prefix))
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed.len(), on_server.len());
    assert_eq!(listed, on_server);
    assert!(listed.contains(&keys[N - 1]));

    let rows = run_json(&ws, &["list", "--all"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), N + 1);
    assert!(rows.iter().all(|r| r["status"] == "complete"));
}
