//! Bad input and bad callers get the right 4xx and a JSON error; nothing
//! a request carries ends up in the log.

use crate::common::{Rig, stderr};
use crate::support::{Master, archive_key};
use serde_json::{Value, json};

/// Send a raw body; returns status and JSON body.
fn raw(m: &Master, method: &str, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = m
        .client
        .request(method.parse().unwrap(), m.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
    (status, v)
}

fn assert_error(got: (u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (s, v) = got;
    assert_eq!(s, status, "{v}");
    assert_eq!(v["error"], code, "{v}");
    assert!(v["details"]["message"].is_string(), "{v}");
    if let Some(f) = field {
        assert_eq!(v["field"], f, "{v}");
    }
    assert!(
        v.as_object()
            .unwrap()
            .keys()
            .all(|k| ["error", "field", "details"].contains(&k.as_str())),
        "{v}"
    );
}

#[test]
fn bad_input_and_bad_callers_get_json_4xx_and_nothing_secret_is_logged() {
    let rig = Rig::get();
    let m = Master::start("bad-input");
    let good = Master::provider_body(&rig, "p", &rig.buckets[0], true);
    let pid = m.create_provider(&good)["id"].as_i64().unwrap();
    let admin = m.admin.clone();
    let post = |body: Vec<u8>| {
        raw(
            &m,
            "POST",
            "/api/v1/storage/providers",
            &admin,
            "application/json",
            body,
        )
    };
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b["name"] = json!(format!("variant {k}"));
        serde_json::to_vec(&b).unwrap()
    };

    // Malformed JSON, wrong types, unknown fields, bad values.
    assert_error(post(b"{\"name\": ".to_vec()), 400, "invalid_json", None);
    assert_error(post(b"[1,2]".to_vec()), 422, "invalid_value", None);
    assert_error(
        post(with("storage_limit_gb", json!("lots"))),
        422,
        "invalid_value",
        Some("storage_limit_gb"),
    );
    assert_error(
        post(with("is_default", json!("yes"))),
        422,
        "invalid_value",
        Some("is_default"),
    );
    assert_error(post(with("typo", json!(1))), 422, "unknown_field", Some("typo"));
    assert_error(
        post(with("storage_limit_gb", json!(-1))),
        422,
        "invalid_value",
        Some("storage_limit_gb"),
    );
    assert_error(
        post(with("endpoint", json!("ftp://x"))),
        422,
        "invalid_value",
        Some("endpoint"),
    );
    assert_error(post(with("type", json!("gcs"))), 422, "invalid_value", Some("type"));
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("bucket");
    assert_error(
        post(serde_json::to_vec(&missing).unwrap()),
        422,
        "invalid_value",
        Some("bucket"),
    );
    // A secret pasted into a number field is not echoed back.
    let (_, echoed) = post(with("storage_limit_gb", json!(rig.secret_key)));
    assert!(!echoed.to_string().contains(&rig.secret_key), "{echoed}");
    // A huge body, a wrong content type.
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(100 * 1024)).into_bytes();
    assert_error(post(huge), 413, "payload_too_large", None);
    assert_error(
        raw(
            &m,
            "POST",
            "/api/v1/storage/providers",
            &admin,
            "text/plain",
            serde_json::to_vec(&good).unwrap(),
        ),
        415,
        "unsupported_media_type",
        None,
    );
    // Negative and unknown values elsewhere.
    let patch = |body: Value| m.admin("PATCH", &format!("/api/v1/storage/providers/{pid}"), Some(&body));
    assert_error(
        patch(json!({"storage_limit_gb": -0.5})),
        422,
        "invalid_value",
        Some("storage_limit_gb"),
    );
    assert_error(patch(json!({"secret": "x"})), 422, "unknown_field", Some("secret"));
    assert_error(
        m.admin("GET", "/api/v1/storage/providers/abc", None),
        400,
        "invalid_value",
        Some("id"),
    );
    assert_error(
        m.admin("GET", "/api/v1/storage/providers/99999", None),
        404,
        "not_found",
        None,
    );
    assert_error(
        m.admin("POST", "/api/v1/storage/reconcile?dry_run=perhaps", None),
        400,
        "invalid_query",
        None,
    );
    assert_error(
        m.admin("POST", "/api/v1/nodes", Some(&json!({"name": "n", "quota_gb": -3}))),
        422,
        "invalid_value",
        Some("quota_gb"),
    );
    assert_error(
        m.admin("PATCH", "/api/v1/nodes/not-a-uuid", Some(&json!({}))),
        400,
        "invalid_value",
        Some("uuid"),
    );
    assert_error(
        m.admin("PUT", "/api/v1/storage/providers", None),
        405,
        "method_not_allowed",
        None,
    );
    assert_error(m.admin("GET", "/api/v1/nothing-here", None), 404, "not_found", None);

    // Tokens: none, garbage, revoked.
    assert_error(m.call("GET", "/api/v1/nodes", None, None), 401, "unauthorized", None);
    assert_error(
        m.call("GET", "/api/v1/nodes", Some("not-a-token"), None),
        401,
        "unauthorized",
        None,
    );
    let out =
        m.ws.cmd()
            .args(["--json", "master", "token", "create", "--label", "temp"])
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let temp = created["token"].as_str().unwrap().to_string();
    assert_eq!(m.call("GET", "/api/v1/nodes", Some(&temp), None).0, 200);
    let out =
        m.ws.cmd()
            .args(["master", "token", "revoke", &created["id"].to_string()])
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_error(
        m.call("GET", "/api/v1/nodes", Some(&temp), None),
        401,
        "unauthorized",
        None,
    );

    // Roles: a node token on an admin route, an admin token on a node
    // route, a node asking about another node.
    let (node_a, token_a) = m.add_node("node-a");
    let (node_b, token_b) = m.add_node("node-b");
    assert_error(
        m.call("GET", "/api/v1/nodes", Some(&token_a), None),
        403,
        "forbidden",
        None,
    );
    assert_error(
        m.call("POST", "/api/v1/storage/providers", Some(&token_a), Some(&good)),
        403,
        "forbidden",
        None,
    );
    assert_error(
        m.admin("POST", "/api/v1/node/leases", Some(&json!({"purpose": "read"}))),
        403,
        "forbidden",
        None,
    );
    let (_, site_b) = m.call(
        "PUT",
        "/api/v1/node/sites/blog",
        Some(&token_b),
        Some(&json!({"period_secs": 60})),
    );
    let site_b = site_b["site_uuid"].as_str().unwrap().to_string();
    assert_error(
        m.call(
            "POST",
            "/api/v1/node/leases",
            Some(&token_a),
            Some(&json!({"site_uuid": site_b, "purpose": "upload", "estimated_bytes": 1})),
        ),
        403,
        "forbidden",
        None,
    );
    let report = json!({
        "key": archive_key(&node_b, &site_b, "blog", 2),
        "site_uuid": site_b,
        "provider_id": pid,
        "size_bytes": 1,
        "sha256": "cd".repeat(32),
        "created_at": "2025-01-02T08:30:00Z"
    });
    assert_error(
        m.call("POST", "/api/v1/node/archives", Some(&token_a), Some(&report)),
        403,
        "forbidden",
        None,
    );
    assert_eq!(
        m.call("POST", "/api/v1/node/archives", Some(&token_b), Some(&report)).0,
        201
    );
    let key_b = report["key"].as_str().unwrap();
    assert_error(
        m.call(
            "DELETE",
            &format!("/api/v1/node/archives?key={key_b}"),
            Some(&token_a),
            None,
        ),
        403,
        "forbidden",
        None,
    );
    let wrong_site = json!({"site_uuid": site_b, "purpose": "read"});
    assert_error(
        m.call("POST", "/api/v1/node/leases", Some(&token_a), Some(&wrong_site)),
        403,
        "forbidden",
        None,
    );
    assert_error(
        m.call(
            "POST",
            "/api/v1/node/leases",
            Some(&token_a),
            Some(&json!({"purpose": "upload"})),
        ),
        422,
        "invalid_value",
        Some("site_uuid"),
    );
    assert_error(
        m.call(
            "PUT",
            "/api/v1/node/sites/..%2F..",
            Some(&token_a),
            Some(&json!({"period_secs": 60})),
        ),
        422,
        "invalid_value",
        Some("name"),
    );
    assert_eq!(node_a.len(), 36);

    // The master is still up and answers after all of it.
    assert_eq!(m.call("GET", "/api/v1/openapi.json", None, None).0, 200);
    // Leases went out with the secret; the log has none of the secrets or
    // tokens, but does have the requests.
    let (status, lease) = m.call(
        "POST",
        "/api/v1/node/leases",
        Some(&token_b),
        Some(&json!({"purpose": "read"})),
    );
    assert_eq!(status, 200);
    assert_eq!(lease["providers"][0]["secret_key"], rig.secret_key);
    let log = m.log_text();
    assert!(
        log.contains("route=\"/api/v1/node/leases\""),
        "requests are not logged: {log}"
    );
    for secret in [&rig.secret_key, &rig.access_key, &m.admin, &token_a, &token_b, &temp] {
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
    }
    assert!(!log.contains("panicked"), "{log}");
}
