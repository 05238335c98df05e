//! Reconciliation against the real bucket: a dry run changes nothing; a
//! real run corrects usage after an object vanished behind the master's
//! back and aborts a stale multipart upload.

use crate::common::Rig;
use crate::support::{Master, archive_key, put_object};
use serde_json::{Value, json};

fn usage(m: &Master, provider: i64, node: &str) -> (Value, Value, Value) {
    let (_, p) = m.admin("GET", &format!("/api/v1/storage/providers/{provider}"), None);
    let (_, nodes) = m.admin("GET", "/api/v1/nodes", None);
    let n = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_uuid"] == node)
        .unwrap()
        .clone();
    (
        p["used_bytes"].clone(),
        n["used_bytes"].clone(),
        n["sites"][0]["used_bytes"].clone(),
    )
}

#[test]
fn reconcile_dry_run_changes_nothing_then_a_real_run_corrects_usage_and_aborts_stale_uploads() {
    let rig = Rig::get();
    let bucket = &rig.buckets[2];
    let m = Master::start("reconcile");
    let pid = m.create_provider(&Master::provider_body(&rig, "p", bucket, true))["id"]
        .as_i64()
        .unwrap();
    let (node, token) = m.add_node("web-reconcile");
    let (_, site) = m.call(
        "PUT",
        "/api/v1/node/sites/shop",
        Some(&token),
        Some(&json!({"period_secs": 3600})),
    );
    let site = site["site_uuid"].as_str().unwrap().to_string();

    // Two archives stored and reported, as a node would.
    let keys: Vec<String> = (1..=2).map(|d| archive_key(&node, &site, "shop", d)).collect();
    for (i, key) in keys.iter().enumerate() {
        let size = 1000 * (i + 1);
        put_object(&rig, bucket, key, size, m.ws.path());
        let report = json!({
            "key": key, "site_uuid": site, "provider_id": pid, "size_bytes": size,
            "sha256": "ab".repeat(32), "created_at": format!("2025-01-0{}T08:30:00Z", i + 1)
        });
        assert_eq!(
            m.call("POST", "/api/v1/node/archives", Some(&token), Some(&report)).0,
            201
        );
    }
    assert_eq!(usage(&m, pid, &node), (json!(3000), json!(3000), json!(3000)));

    // Behind the master's back: the first object goes, an upload is left open.
    rig.s3api(&["delete-object", "--bucket", bucket, "--key", &keys[0]]);
    let stale_key = format!("{node}/{site}/shop_20250109_083000.tar.zst");
    let upload = rig.s3api(&["create-multipart-upload", "--bucket", bucket, "--key", &stale_key]);
    let upload_id = upload["UploadId"].as_str().unwrap().to_string();
    assert_eq!(
        rig.pending_uploads(bucket, &format!("{node}/")),
        vec![stale_key.clone()]
    );

    let reconcile = |dry: bool| {
        let (status, report) = m.admin(
            "POST",
            &format!("/api/v1/storage/reconcile?dry_run={dry}&stale_upload_secs=0"),
            None,
        );
        assert_eq!(status, 200, "{report}");
        report
    };
    let dry = reconcile(true);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["missing_archives"][0]["key"], keys[0], "{dry}");
    assert_eq!(dry["missing_archives"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(dry["stale_uploads"][0]["upload_id"], upload_id, "{dry}");
    assert_eq!(dry["stale_uploads"][0]["aborted"], false);
    assert_eq!(dry["providers"][0]["used_bytes_after"], 2000, "{dry}");
    assert_eq!(dry["unknown_objects"], json!([]), "{dry}");
    // Nothing changed.
    assert_eq!(usage(&m, pid, &node), (json!(3000), json!(3000), json!(3000)));
    assert_eq!(
        rig.pending_uploads(bucket, &format!("{node}/")),
        vec![stale_key.clone()]
    );

    let real = reconcile(false);
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["stale_uploads"][0]["aborted"], true, "{real}");
    assert_eq!(usage(&m, pid, &node), (json!(2000), json!(2000), json!(2000)));
    assert!(rig.pending_uploads(bucket, &format!("{node}/")).is_empty());
    // The provider's view agrees with what `aws s3api` lists.
    let listed: u64 = rig.keys(bucket, &format!("{node}/")).iter().map(|(_, s)| s).sum();
    assert_eq!(listed, 2000);
    let (_, p) = m.admin("GET", &format!("/api/v1/storage/providers/{pid}"), None);
    assert_eq!(p["archive_count"], 1);

    // An object nobody reported is reported as unknown, and counts in the
    // provider's usage (it takes room in the bucket).
    put_object(&rig, bucket, &format!("{node}/{site}/stray.bin"), 10, m.ws.path());
    let again = reconcile(false);
    assert_eq!(
        again["unknown_objects"][0]["key"],
        format!("{node}/{site}/stray.bin"),
        "{again}"
    );
    assert_eq!(
        again["missing_archives"].as_array().unwrap().len(),
        1,
        "still missing: {again}"
    );
    assert_eq!(usage(&m, pid, &node).0, json!(2010));
}

/// On a provider that cannot list open uploads (s3s-fs answers
/// ListMultipartUploads with 501), reconcile still lists the objects,
/// finds the missing archive and corrects usage; it reports no stale
/// upload rather than failing the provider.
#[test]
fn reconcile_on_a_provider_without_upload_listing_still_corrects_usage() {
    let rig = Rig::s3s();
    let bucket = &rig.buckets[2];
    let m = Master::start("reconcile-s3s");
    let pid = m.create_provider(&Master::provider_body(&rig, "s3s", bucket, true))["id"]
        .as_i64()
        .unwrap();
    let (node, token) = m.add_node("web-s3s");
    let (_, site) = m.call(
        "PUT",
        "/api/v1/node/sites/shop",
        Some(&token),
        Some(&json!({"period_secs": 3600})),
    );
    let site = site["site_uuid"].as_str().unwrap().to_string();
    let keys: Vec<String> = (1..=2).map(|d| archive_key(&node, &site, "shop", d)).collect();
    for (i, key) in keys.iter().enumerate() {
        put_object(&rig, bucket, key, 1000, m.ws.path());
        let report = json!({
            "key": key, "site_uuid": site, "provider_id": pid, "size_bytes": 1000,
            "sha256": "ab".repeat(32), "created_at": format!("2025-01-0{}T08:30:00Z", i + 1)
        });
        assert_eq!(
            m.call("POST", "/api/v1/node/archives", Some(&token), Some(&report)).0,
            201
        );
    }
    rig.s3api(&["delete-object", "--bucket", bucket, "--key", &keys[0]]);
    let (status, report) = m.admin("POST", "/api/v1/storage/reconcile?dry_run=false", None);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["providers"][0]["ok"], true, "{report}");
    assert_eq!(report["missing_archives"][0]["key"], keys[0], "{report}");
    assert_eq!(report["stale_uploads"], json!([]), "{report}");
    assert_eq!(usage(&m, pid, &node), (json!(1000), json!(1000), json!(1000)));
}
