//! Providers through HTTP, as seed 001 describes them.

use crate::common::Rig;
use crate::support::{Master, archive_key};
use serde_json::{Value, json};

#[test]
fn provider_lifecycle_through_http_with_the_seed_body() {
    let rig = Rig::get();
    let m = Master::start("lifecycle");
    let body = Master::provider_body(&rig, "iDrive E2 Primary", &rig.buckets[0], true);
    let created = m.create_provider(&body);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "iDrive E2 Primary");
    assert_eq!(created["type"], "s3");
    assert_eq!(created["is_default"], true);
    assert_eq!(created["storage_limit_gb"].as_f64(), Some(1000.0));
    assert_eq!(created["used_gb"].as_f64(), Some(0.0));
    let text = created.to_string();
    assert!(!text.contains(&rig.secret_key), "the secret is in the response: {text}");
    assert!(!text.contains(&rig.access_key), "the access key is shown whole: {text}");
    assert!(created.get("secret_key").is_none());
    assert!(created["access_key"].as_str().unwrap().ends_with('…'));

    let (status, list) = m.admin("GET", "/api/v1/storage/providers", None);
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&rig.secret_key));
    let (status, one) = m.admin("GET", &format!("/api/v1/storage/providers/{id}"), None);
    assert_eq!((status, &one["id"]), (200, &json!(id)));

    // The live check, like `sitebackup servers`.
    let (status, check) = m.admin("POST", &format!("/api/v1/storage/providers/{id}/test"), None);
    assert_eq!(
        (status, &check["ok"], &check["status"]),
        (200, &json!(true), &json!("ok")),
        "{check}"
    );

    // A provider with wrong keys fails the same check.
    let mut bad = Master::provider_body(&rig, "wrong keys", &rig.buckets[1], false);
    bad["secret_key"] = json!("not-the-secret");
    let bad_id = m.create_provider(&bad)["id"].as_i64().unwrap();
    let (status, check) = m.admin("POST", &format!("/api/v1/storage/providers/{bad_id}/test"), None);
    assert_eq!((status, &check["ok"]), (200, &json!(false)), "{check}");
    assert_eq!(check["status"], "credentials", "{check}");

    // PATCH: new limit and name; setting the default moves it.
    let (status, patched) = m.admin(
        "PATCH",
        &format!("/api/v1/storage/providers/{bad_id}"),
        Some(&json!({"storage_limit_gb": 0.5, "name": "second", "is_default": true})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["storage_limit_gb"].as_f64(), Some(0.5));
    assert_eq!(patched["storage_limit_bytes"], 500_000_000);
    let (_, list) = m.admin("GET", "/api/v1/storage/providers", None);
    let defaults: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["is_default"] == true)
        .collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0]["id"], bad_id);
    // Keys can be replaced, and the check then passes.
    let (status, _) = m.admin(
        "PATCH",
        &format!("/api/v1/storage/providers/{bad_id}"),
        Some(&json!({"secret_key": rig.secret_key})),
    );
    assert_eq!(status, 200);
    let (_, check) = m.admin("POST", &format!("/api/v1/storage/providers/{bad_id}/test"), None);
    assert_eq!(check["ok"], true, "{check}");

    // A provider holding archives is only deleted with force.
    let (node, token) = m.add_node("web-lifecycle");
    let (status, site) = m.call(
        "PUT",
        "/api/v1/node/sites/blog",
        Some(&token),
        Some(&json!({"period_secs": 86400})),
    );
    assert_eq!(status, 201, "{site}");
    let site = site["site_uuid"].as_str().unwrap().to_string();
    let report = json!({
        "key": archive_key(&node, &site, "blog", 1),
        "site_uuid": site,
        "provider_id": id,
        "size_bytes": 2_000_000,
        "sha256": "ab".repeat(32),
        "created_at": "2025-01-01T08:30:00Z"
    });
    let (status, _) = m.call("POST", "/api/v1/node/archives", Some(&token), Some(&report));
    assert_eq!(status, 201);
    let (_, one) = m.admin("GET", &format!("/api/v1/storage/providers/{id}"), None);
    assert_eq!(one["used_bytes"], 2_000_000);
    assert_eq!(one["used_gb"].as_f64(), Some(0.002));
    let (status, refused) = m.admin("DELETE", &format!("/api/v1/storage/providers/{id}"), None);
    assert_eq!((status, &refused["error"]), (409, &json!("conflict")), "{refused}");
    let (status, _) = m.admin("DELETE", &format!("/api/v1/storage/providers/{id}?force=true"), None);
    assert_eq!(status, 204);
    let (status, gone) = m.admin("GET", &format!("/api/v1/storage/providers/{id}"), None);
    assert_eq!((status, &gone["error"]), (404, &json!("not_found")));
    let (status, _) = m.admin("DELETE", &format!("/api/v1/storage/providers/{bad_id}"), None);
    assert_eq!(status, 204);
    let (_, list) = m.admin("GET", "/api/v1/storage/providers", None);
    assert_eq!(list, json!([]));
}

#[test]
fn twenty_concurrent_new_defaults_leave_exactly_one() {
    let rig = Rig::get();
    let m = Master::start("defaults");
    let ids: Vec<i64> = (0..20)
        .map(|i| {
            let body = Master::provider_body(&rig, &format!("p{i}"), &rig.buckets[0], i == 0);
            m.create_provider(&body)["id"].as_i64().unwrap()
        })
        .collect();
    let barrier = std::sync::Barrier::new(ids.len());
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (m, barrier) = (&m, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    m.admin(
                        "PATCH",
                        &format!("/api/v1/storage/providers/{id}"),
                        Some(&json!({"is_default": true})),
                    )
                    .0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (_, list) = m.admin("GET", "/api/v1/storage/providers", None);
    let defaults = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["is_default"] == true)
        .count();
    assert_eq!(defaults, 1, "{list}");
    // The database agrees, read with the stock sqlite3 tool.
    let db = m.state_dir().join("master.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT count(*) FROM providers WHERE is_default = 1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}
