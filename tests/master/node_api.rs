//! The node endpoints: register, lease (quotas), report, sync; and what
//! the admin sees of nodes and sites.

use crate::common::Rig;
use crate::support::{Master, archive_key};
use serde_json::{Value, json};

#[test]
fn node_endpoints_register_lease_report_and_sync() {
    let rig = Rig::get();
    let m = Master::start("node-api");
    let second = m.create_provider(&Master::provider_body(&rig, "second", &rig.buckets[1], false));
    let first = m.create_provider(&Master::provider_body(&rig, "first", &rig.buckets[0], true));
    let (node, token) = m.add_node("web-api");
    let call = |method: &str, path: &str, body: Option<Value>| m.call(method, path, Some(&token), body.as_ref());

    // Register: 201 with a new uuid, then 200 with the same one.
    let (status, site) = call("PUT", "/api/v1/node/sites/blog", Some(json!({"period_secs": 86400})));
    assert_eq!(status, 201, "{site}");
    let site_uuid = site["site_uuid"].as_str().unwrap().to_string();
    let (status, again) = call("PUT", "/api/v1/node/sites/blog", Some(json!({"period_secs": 3600})));
    assert_eq!(
        (status, again["site_uuid"].as_str().unwrap()),
        (200, site_uuid.as_str())
    );
    assert_eq!(again["period_secs"], 3600);

    // An upload lease: providers default first, the node prefix, a short life.
    let upload = json!({"site_uuid": site_uuid, "purpose": "upload", "estimated_bytes": 1000});
    let (status, lease) = call("POST", "/api/v1/node/leases", Some(upload.clone()));
    assert_eq!(status, 200, "{lease}");
    let ids: Vec<&Value> = lease["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&first["id"], &second["id"]]);
    assert_eq!(lease["prefix"], format!("{node}/"));
    assert_eq!(lease["providers"][0]["secret_key"], rig.secret_key);
    assert_eq!(lease["providers"][0]["storage_limit_bytes"], 1_000_000_000_000u64);
    let expires = chrono::DateTime::parse_from_rfc3339(lease["expires_at"].as_str().unwrap()).unwrap();
    let ttl = expires.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((1..=60).contains(&ttl), "expires in {ttl} s");
    assert_eq!(lease["site_quota_remaining_bytes"], Value::Null);

    // Report an archive: 201, the same again 200, usage moves once.
    let key = archive_key(&node, &site_uuid, "blog", 3);
    let report = json!({
        "key": key, "site_uuid": site_uuid, "provider_id": first["id"],
        "size_bytes": 600, "sha256": "ef".repeat(32), "created_at": "2025-01-03T08:30:00Z"
    });
    assert_eq!(call("POST", "/api/v1/node/archives", Some(report.clone())).0, 201);
    let (status, ack) = call("POST", "/api/v1/node/archives", Some(report.clone()));
    assert_eq!((status, &ack["changed"]), (200, &json!(false)));
    let mut other = report.clone();
    other["size_bytes"] = json!(601);
    assert_eq!(call("POST", "/api/v1/node/archives", Some(other)).0, 409);

    // Quotas: the site's (500 bytes left of 1100) refuses an upload of
    // 501 with the figures, never a read.
    let (status, _) = m.admin(
        "PATCH",
        &format!("/api/v1/sites/{site_uuid}"),
        Some(&json!({"quota_gb": 0.0000011})),
    );
    assert_eq!(status, 200);
    let mut big = upload.clone();
    big["estimated_bytes"] = json!(501);
    let (status, refused) = call("POST", "/api/v1/node/leases", Some(big));
    assert_eq!(
        (status, &refused["error"]),
        (403, &json!("quota_exceeded")),
        "{refused}"
    );
    let d = &refused["details"];
    assert_eq!(
        (&d["used_bytes"], &d["quota_bytes"], &d["estimated_bytes"]),
        (&json!(600), &json!(1100), &json!(501))
    );
    assert_eq!(d["scope"], "site");
    let mut fits = upload.clone();
    fits["estimated_bytes"] = json!(500);
    let (status, lease) = call("POST", "/api/v1/node/leases", Some(fits));
    assert_eq!(
        (status, &lease["site_quota_remaining_bytes"]),
        (200, &json!(500)),
        "{lease}"
    );
    let read = json!({"site_uuid": site_uuid, "purpose": "read", "estimated_bytes": 999_999});
    assert_eq!(call("POST", "/api/v1/node/leases", Some(read)).0, 200);
    // The node's quota is checked too.
    let (status, _) = m.admin(
        "PATCH",
        &format!("/api/v1/nodes/{node}"),
        Some(&json!({"quota_gb": 0.0000007})),
    );
    assert_eq!(status, 200);
    let mut node_over = upload.clone();
    node_over["estimated_bytes"] = json!(101);
    let (status, refused) = call("POST", "/api/v1/node/leases", Some(node_over));
    assert_eq!(
        (status, &refused["details"]["scope"]),
        (403, &json!("node")),
        "{refused}"
    );
    let (status, _) = m.admin(
        "PATCH",
        &format!("/api/v1/nodes/{node}"),
        Some(&json!({"quota_gb": null})),
    );
    assert_eq!(status, 200);

    // Sync: results in, the master's view out; an unknown site is named.
    let ghost = uuid::Uuid::new_v4().to_string();
    let sync = json!({
        "version": "0.1.0",
        "free_space_bytes": 12345,
        "sites": [
            {"site_uuid": site_uuid, "last_success": "2025-01-03T08:31:00Z",
             "last_result": {"outcome": "success", "at": "2025-01-03T08:31:00Z"}},
            {"site_uuid": ghost}
        ]
    });
    let (status, out) = call("POST", "/api/v1/node/sync", Some(sync));
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["unknown_sites"], json!([ghost]));
    assert_eq!(out["sites"][0]["used_bytes"], 600);
    assert_eq!(out["node_used_bytes"], 600);

    // The admin's view: usage, last seen, the last success long ago means
    // missed periods.
    let (status, nodes) = m.admin("GET", "/api/v1/nodes", None);
    assert_eq!(status, 200);
    let n = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_uuid"] == node)
        .unwrap();
    assert!(n["last_seen"].is_string(), "{n}");
    assert_eq!(
        (&n["version"], &n["free_space_bytes"], &n["used_bytes"]),
        (&json!("0.1.0"), &json!(12345), &json!(600))
    );
    let s = &n["sites"][0];
    assert_eq!(s["last_success"], "2025-01-03T08:31:00Z");
    assert_eq!(s["last_result"]["outcome"], "success");
    assert_eq!(s["missed"], true);
    assert!(s["missed_periods"].as_u64().unwrap() > 24, "{s}");
    assert_eq!(n["sites_missed"], 1);

    // Deleted: usage back to 0, idempotent.
    let (status, ack) = call("DELETE", &format!("/api/v1/node/archives?key={key}"), None);
    assert_eq!((status, &ack["changed"]), (200, &json!(true)));
    let (status, ack) = call("DELETE", &format!("/api/v1/node/archives?key={key}"), None);
    assert_eq!((status, &ack["changed"]), (200, &json!(false)));
    let (_, p) = m.admin("GET", &format!("/api/v1/storage/providers/{}", first["id"]), None);
    assert_eq!(p["used_bytes"], 0);

    // A removed node's token stops working.
    let (status, _) = m.admin("DELETE", &format!("/api/v1/nodes/{node}"), None);
    assert_eq!(status, 204);
    assert_eq!(call("POST", "/api/v1/node/sync", Some(json!({"version": "x"}))).0, 401);
}
