use super::*;
use crate::master::repo::ArchiveRow;
use uuid::Uuid;

fn obj(key: &str, size: u64) -> ObjectInfo {
    ObjectInfo {
        key: key.into(),
        size,
        metadata: Default::default(),
    }
}

fn row(provider_id: i64, key: &str, size: u64, missing: bool) -> ArchiveRow {
    ArchiveRow {
        key: key.into(),
        provider_id,
        node_uuid: Uuid::nil(),
        site_uuid: Uuid::nil(),
        size_bytes: size,
        sha256: "00".repeat(32),
        created_at: Utc::now(),
        missing_at: missing.then(Utc::now),
    }
}

const A: &str = "n/s/blog_20250101_000000.tar.zst";
const B: &str = "n/s/blog_20250102_000000.tar.zst";
const C: &str = "n/s/blog_20250103_000000.tar.zst";

#[test]
fn drift_is_reported_and_usage_follows_the_listing() {
    let now = Utc::now();
    let listing = Listing {
        provider_id: 1,
        name: "p".into(),
        used_before: 999,
        result: Ok((
            vec![
                obj(A, 100),
                obj(&format!("{A}.sha256"), 80),
                obj(B, 250),
                obj("n/.sitebackup-owner", 20),
                obj("n/s/stray.bin", 7),
                obj(C, 30),
            ],
            vec![
                PendingUpload {
                    key: "n/s/old.tar.zst".into(),
                    upload_id: "old".into(),
                    initiated: Some(now - chrono::Duration::days(3)),
                },
                PendingUpload {
                    key: "n/s/running.tar.zst".into(),
                    upload_id: "running".into(),
                    initiated: Some(now - chrono::Duration::minutes(5)),
                },
                PendingUpload {
                    key: "n/s/ageless.tar.zst".into(),
                    upload_id: "ageless".into(),
                    initiated: None,
                },
            ],
        )),
    };
    let rows = [
        row(1, A, 100, false),
        row(1, B, 200, false),
        row(1, C, 30, true),
        row(1, "n/s/gone.tar.zst", 50, false),
        row(2, "n/s/other-provider.tar.zst", 5, false),
    ];
    let (report, changes) = plan(&[listing], &rows, now, DEFAULT_STALE_UPLOAD);
    let keys = |v: &[DriftObject]| v.iter().map(|d| d.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&report.unknown_objects), ["n/s/stray.bin"]);
    assert_eq!(keys(&report.missing_archives), ["n/s/gone.tar.zst"]);
    assert_eq!(report.size_mismatches.len(), 1);
    assert_eq!(
        (
            report.size_mismatches[0].recorded_bytes,
            report.size_mismatches[0].listed_bytes
        ),
        (200, 250)
    );
    assert_eq!(
        report
            .stale_uploads
            .iter()
            .map(|u| u.upload_id.as_str())
            .collect::<Vec<_>>(),
        ["old"]
    );
    assert_eq!(changes.provider_usage.get(&1), Some(&(100 + 80 + 250 + 20 + 7 + 30)));
    assert_eq!(changes.missing, ["n/s/gone.tar.zst"]);
    assert_eq!(changes.found, [C]);
    assert_eq!(changes.sizes.get(B), Some(&250));
    assert_eq!(report.providers[0].used_bytes_before, 999);
}

#[test]
fn a_provider_that_cannot_be_listed_is_left_alone() {
    let listing = Listing {
        provider_id: 1,
        name: "p".into(),
        used_before: 10,
        result: Err("Connection error".into()),
    };
    let (report, changes) = plan(&[listing], &[row(1, A, 100, false)], Utc::now(), DEFAULT_STALE_UPLOAD);
    assert!(report.missing_archives.is_empty());
    assert!(!report.providers[0].ok);
    assert_eq!(report.providers[0].used_bytes_after, 10);
    assert_eq!(changes, ReconcileChanges::default());
}
