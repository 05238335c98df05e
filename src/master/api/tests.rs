use super::node::plan_quota;
use crate::master::repo::{LeaseSnapshot, NodeRow, SiteRow};
use crate::protocol::{LeasePurpose, QuotaScope};
use chrono::Utc;
use uuid::Uuid;

fn snapshot(site_quota: Option<u64>, site_used: u64, node_quota: Option<u64>, node_used: u64) -> LeaseSnapshot {
    let node_uuid = Uuid::new_v4();
    LeaseSnapshot {
        node: NodeRow {
            node_uuid,
            name: "web1".into(),
            quota_bytes: node_quota,
            used_bytes: node_used,
            archive_count: 0,
            created_at: Utc::now(),
            last_seen: None,
            version: None,
            free_space_bytes: None,
        },
        site: Some(SiteRow {
            site_uuid: Uuid::new_v4(),
            node_uuid,
            name: "blog".into(),
            period_secs: 86_400,
            quota_bytes: site_quota,
            used_bytes: site_used,
            archive_count: 0,
            registered_at: Utc::now(),
            last_success: None,
            last_outcome: None,
            last_run_at: None,
            last_error: None,
        }),
        providers: Vec::new(),
    }
}

#[test]
fn upload_leases_stop_at_either_quota_and_reads_never_do() {
    // Fits exactly: used + estimate == quota.
    let s = snapshot(Some(100), 60, Some(1000), 500);
    assert_eq!(plan_quota(&s, LeasePurpose::Upload, 40), Ok((Some(40), Some(500))));
    let over = plan_quota(&s, LeasePurpose::Upload, 41).unwrap_err();
    assert_eq!(
        (over.scope, over.used_bytes, over.quota_bytes, over.estimated_bytes),
        (QuotaScope::Site, 60, 100, 41)
    );
    let s = snapshot(None, 60, Some(1000), 990);
    let over = plan_quota(&s, LeasePurpose::Upload, 11).unwrap_err();
    assert_eq!((over.scope, over.uuid), (QuotaScope::Node, s.node.node_uuid));
    // A read lease over both quotas still goes through.
    let s = snapshot(Some(10), 50, Some(10), 50);
    assert_eq!(plan_quota(&s, LeasePurpose::Read, u64::MAX), Ok((Some(0), Some(0))));
    // No quota: nothing remaining to report, nothing refused.
    let s = snapshot(None, 50, None, 50);
    assert_eq!(plan_quota(&s, LeasePurpose::Upload, u64::MAX), Ok((None, None)));
}

/// The API table of the master (README, "Node mode"), written out: every method and path of the API.
const DESIGN_TABLE: &[(&str, &str)] = &[
    ("post", "/api/v1/storage/providers"),
    ("get", "/api/v1/storage/providers"),
    ("get", "/api/v1/storage/providers/{id}"),
    ("patch", "/api/v1/storage/providers/{id}"),
    ("delete", "/api/v1/storage/providers/{id}"),
    ("post", "/api/v1/storage/providers/{id}/test"),
    ("post", "/api/v1/storage/reconcile"),
    ("get", "/api/v1/nodes"),
    ("post", "/api/v1/nodes"),
    ("patch", "/api/v1/nodes/{uuid}"),
    ("delete", "/api/v1/nodes/{uuid}"),
    ("patch", "/api/v1/sites/{uuid}"),
    ("put", "/api/v1/node/sites/{name}"),
    ("post", "/api/v1/node/leases"),
    ("post", "/api/v1/node/archives"),
    ("delete", "/api/v1/node/archives"),
    ("post", "/api/v1/node/sync"),
    ("get", "/api/v1/openapi.json"),
];

#[cfg(feature = "openapi")]
#[test]
fn the_openapi_document_has_exactly_the_design_table() {
    let doc = super::openapi::document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let mut found: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "put", "post", "patch", "delete"].contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    found.sort();
    let mut want: Vec<(String, String)> = DESIGN_TABLE
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    want.sort();
    assert_eq!(found, want);
    // The bodies are described by the protocol types.
    let lease = &doc["paths"]["/api/v1/node/leases"]["post"];
    assert_eq!(
        lease["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LeaseRequest"
    );
    let schemas = &doc["components"]["schemas"];
    for name in [
        "ProviderCreate",
        "Provider",
        "LeaseResponse",
        "LeaseProvider",
        "ErrorBody",
        "ReconcileReport",
    ] {
        assert!(schemas[name].is_object(), "no schema {name}");
    }
    let create = &schemas["ProviderCreate"]["properties"];
    for field in [
        "name",
        "type",
        "endpoint",
        "bucket",
        "region",
        "access_key",
        "secret_key",
        "storage_limit_gb",
        "is_default",
    ] {
        assert!(create[field].is_object(), "ProviderCreate lacks {field}");
    }
    // The admin view of a provider never has a secret.
    assert!(schemas["Provider"]["properties"]["secret_key"].is_null());
}
