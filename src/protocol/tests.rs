use super::*;

#[test]
fn secrets_never_show_in_debug() {
    let lease = LeaseProvider {
        id: 1,
        name: "p".into(),
        endpoint: "e".into(),
        region: "r".into(),
        bucket: "b".into(),
        path_style: true,
        access_key: SecretString::new("AKIAEXAMPLEACCESS"),
        secret_key: SecretString::new("wJalrXUtnFEMIsecret"),
        storage_limit_bytes: 1,
        used_bytes: 0,
        is_default: true,
    };
    let shown = format!("{lease:?}");
    assert!(!shown.contains("AKIAEXAMPLE") && !shown.contains("wJalr"), "{shown}");
    let json = serde_json::to_string(&lease).unwrap();
    assert!(json.contains("\"secret_key\":\"wJalrXUtnFEMIsecret\""), "{json}");
}

#[test]
fn seed_body_parses_and_unknown_fields_are_refused() {
    let body = r#"{
      "name": "iDrive E2 Primary", "type": "s3",
      "endpoint": "t5k4.ldn.idrivee2-61.com", "bucket": "backups-bucket",
      "region": "eu-west-3", "access_key": "YOUR_ACCESS_KEY",
      "secret_key": "YOUR_SECRET_KEY", "storage_limit_gb": 1000, "is_default": true
    }"#;
    let p: ProviderCreate = serde_json::from_str(body).unwrap();
    assert_eq!(
        (p.kind, p.storage_limit_gb, p.is_default),
        (ProviderKind::S3, Some(1000.0), true)
    );
    let err = serde_json::from_str::<ProviderCreate>(&body.replace("\"type\"", "\"typo\"")).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn patch_tells_null_from_absent() {
    let clear: SitePatch = serde_json::from_str(r#"{"quota_gb": null}"#).unwrap();
    assert_eq!(clear.quota_gb, Some(None));
    let keep: SitePatch = serde_json::from_str("{}").unwrap();
    assert_eq!(keep.quota_gb, None);
    let set: NodePatch = serde_json::from_str(r#"{"quota_gb": 2.5}"#).unwrap();
    assert_eq!(set.quota_gb, Some(Some(2.5)));
}

#[test]
fn error_body_shape_and_quota_details() {
    let mut body = ErrorBody::new(ErrorCode::QuotaExceeded, Some("estimated_bytes".into()), "over");
    let q = QuotaExceeded {
        scope: QuotaScope::Site,
        uuid: Uuid::nil(),
        used_bytes: 10,
        quota_bytes: 12,
        estimated_bytes: 5,
    };
    if let serde_json::Value::Object(m) = serde_json::to_value(&q).unwrap() {
        body.details.extend(m);
    }
    let v = serde_json::to_value(&body).unwrap();
    assert_eq!(v["error"], "quota_exceeded");
    assert_eq!(v["details"]["used_bytes"], 10);
    assert_eq!(v["details"]["message"], "over");
    let back: ErrorBody = serde_json::from_value(v).unwrap();
    assert_eq!(back.quota(), Some(q));
    let unknown: ErrorBody = serde_json::from_str(r#"{"error":"brand_new","field":null,"details":{}}"#).unwrap();
    assert_eq!(unknown.error, ErrorCode::Unknown);
}

#[test]
fn lease_request_defaults() {
    let r: LeaseRequest = serde_json::from_str(r#"{"purpose":"read"}"#).unwrap();
    assert_eq!(
        (r.site_uuid, r.purpose, r.estimated_bytes),
        (None, LeasePurpose::Read, 0)
    );
    assert!(serde_json::from_str::<LeaseRequest>(r#"{"purpose":"write"}"#).is_err());
    let q: ReconcileQuery = serde_json::from_str("{}").unwrap();
    assert!(q.dry_run);
}
