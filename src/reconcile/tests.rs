use super::*;

fn owner() -> Owner {
    Owner::Host("web1".into())
}
const K1: &str = "web1/2024/12/25/blog-backup-20241225-083000.tar.zst";
const K2: &str = "web1/2024/12/26/blog-backup-20241226-083000.tar.zst";
const K3: &str = "web1/2024/12/27/shop-backup-20241227-010203-2.tar.zst";

fn obj(key: &str, size: u64) -> ObjectInfo {
    ObjectInfo {
        key: key.into(),
        size,
        metadata: BTreeMap::new(),
    }
}

fn row(id: i64, key: &str, size: u64, status: &str) -> ArchiveRow {
    ArchiveRow {
        id,
        site: "blog".into(),
        server_id: 1,
        endpoint: "h:1".into(),
        bucket: "b".into(),
        key: key.into(),
        size_bytes: size,
        sha256: None,
        created_at: "2024-12-25T08:30:00Z".into(),
        status: status.parse().unwrap(),
        error: None,
        verified_at: None,
        verify_outcome: None,
        verify_error: None,
        suspect: None,
        suspect_reason: None,
    }
}

fn uploading(id: i64, site: &str, key: &str, upload_id: &str) -> UploadingRow {
    UploadingRow {
        id,
        site: site.into(),
        endpoint: "h:1".into(),
        bucket: "b".into(),
        key: key.into(),
        upload_id: Some(upload_id.into()),
        size_bytes: 0,
        sha256: None,
    }
}

fn plan(inv: &ServerInventory, rows: &[ArchiveRow], up: &[UploadingRow], busy: &[&str]) -> ServerPlan {
    let busy_sites: BTreeSet<String> = busy.iter().map(|s| s.to_string()).collect();
    plan_server(PlanInput {
        owner: &owner(),
        inventory: inv,
        rows,
        uploading: up,
        busy_sites: &busy_sites,
        may_import: &|_| true,
        prefix_owned: true,
    })
}

#[test]
fn another_installations_objects_and_uploads_are_left_alone() {
    let mine = "11111111-1111-4111-8111-111111111111";
    let with_writer = |id: &str| ObjectDetails {
        sha256: None,
        metadata: [("install-id".to_string(), id.to_string())].into(),
    };
    let inv = ServerInventory {
        objects: vec![
            obj(K1, 100),
            obj(K2, 200),
            obj(K3, 300),
            obj("web1/.sitebackup-owner", 120),
            obj("web1/2024/12/30/gone-backup-20241230-000000.tar.zst.sha256", 90),
        ],
        uploads: vec![
            PendingUpload {
                key: K1.into(),
                upload_id: "recorded".into(),
                initiated: None,
            },
            PendingUpload {
                key: K2.into(),
                upload_id: "unknown".into(),
                initiated: None,
            },
        ],
        details: [
            (K1.to_string(), with_writer(mine)),
            (K2.to_string(), with_writer("22222222-2222-4222-8222-222222222222")),
            (K3.to_string(), ObjectDetails::default()),
        ]
        .into(),
        uploads_not_listable: false,
    };
    let up = [uploading(9, "blog", K1, "recorded")];
    let busy = BTreeSet::new();
    let may_import = |writer: Option<&str>| writer.is_none_or(|w| w == mine);
    let web1 = Owner::Host("web1".into());
    let input = |prefix_owned| PlanInput {
        owner: &web1,
        inventory: &inv,
        rows: &[],
        uploading: &up,
        busy_sites: &busy,
        may_import: &may_import,
        prefix_owned,
    };
    // A prefix nobody claimed: only our own and id-less archives, only our
    // recorded upload, no sidecar deletions.
    let p = plan_server(input(false));
    let imported: Vec<&str> = p.imports.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(imported, [K1, K3]);
    assert_eq!(p.aborts.len(), 1);
    assert_eq!(p.aborts[0].upload_id, "recorded");
    assert_eq!(p.foreign, [K2.to_string(), format!("{K2} (open upload unknown)")]);
    assert!(p.orphan_sidecars.is_empty());
    assert!(
        !p.unrecognised.iter().any(|k| k.ends_with(".sitebackup-owner")),
        "{:?}",
        p.unrecognised
    );
    // Our prefix: every open upload under it is ours to abort.
    let p = plan_server(input(true));
    assert_eq!(p.aborts.len(), 2);
    assert_eq!(p.foreign, [K2.to_string()]);
    assert_eq!(p.orphan_sidecars.len(), 1);
}

#[test]
fn unknown_archives_are_imported_with_sidecar_checksum_and_usage_follows() {
    let mut inv = ServerInventory {
        objects: vec![
            obj(K1, 100),
            obj(&format!("{K1}.sha256"), 90),
            obj(K2, 200),
            obj(K3, 50),
        ],
        ..Default::default()
    };
    inv.details.insert(
        K1.into(),
        ObjectDetails {
            sha256: Some("ab".repeat(32)),
            metadata: [("site".to_string(), "blog".to_string())].into(),
        },
    );
    inv.details.insert(
        K3.into(),
        ObjectDetails {
            sha256: None,
            metadata: [("created-at".to_string(), "2024-12-27T01:02:03+00:00".to_string())].into(),
        },
    );
    let rows = [row(7, K2, 200, "complete")];
    let p = plan(&inv, &rows, &[], &[]);
    assert_eq!(p.imports.len(), 2, "{p:#?}");
    assert_eq!(p.imports[0].key, K1);
    assert_eq!(p.imports[0].sha256, Some("ab".repeat(32)));
    assert_eq!(p.imports[0].site, "blog");
    assert_eq!(p.imports[0].created_at, "2024-12-25T08:30:00Z");
    assert_eq!(p.imports[0].existing_id, None);
    assert_eq!(p.imports[1].key, K3);
    assert_eq!(p.imports[1].site, "shop");
    assert_eq!(p.imports[1].sha256, None);
    assert!(p.missing.is_empty() && p.size_mismatches.is_empty() && p.orphan_sidecars.is_empty());
    assert_eq!((p.usage_before_bytes, p.usage_after_bytes), (200, 350));
}

#[test]
fn gone_objects_are_missing_and_sizes_follow_the_server() {
    let inv = ServerInventory {
        objects: vec![obj(K1, 120), obj(&format!("{K2}.sha256"), 90)],
        ..Default::default()
    };
    let rows = [
        row(1, K1, 100, "complete"),
        row(2, K2, 200, "complete"),
        row(3, K3, 50, "missing"),
        row(4, K3, 50, "deleted"),
    ];
    let p = plan(&inv, &rows, &[], &[]);
    assert_eq!(
        p.size_mismatches,
        vec![SizeFix {
            id: 1,
            key: K1.into(),
            catalog_bytes: 100,
            server_bytes: 120
        }]
    );
    assert_eq!(
        p.missing,
        vec![Missing {
            id: 2,
            key: K2.into(),
            size_bytes: 200
        }]
    );
    assert_eq!(p.orphan_sidecars, vec![format!("{K2}.sha256")]);
    assert!(p.imports.is_empty());
    assert_eq!((p.usage_before_bytes, p.usage_after_bytes), (300, 120));
}

#[test]
fn an_object_that_came_back_reuses_its_row() {
    let inv = ServerInventory {
        objects: vec![obj(K1, 100)],
        ..Default::default()
    };
    let rows = [row(3, K1, 100, "failed"), row(5, K1, 100, "missing")];
    let p = plan(&inv, &rows, &[], &[]);
    assert_eq!(p.imports.len(), 1);
    assert_eq!(p.imports[0].existing_id, Some(5));
    assert_eq!(p.imports[0].previous_status, Some(ArchiveStatus::Missing));
    assert_eq!(p.usage_after_bytes, 100);
}

#[test]
fn uploads_of_running_backups_are_left_alone_and_others_aborted() {
    let inv = ServerInventory {
        objects: vec![obj(K1, 100)],
        uploads: vec![
            PendingUpload {
                key: K2.into(),
                upload_id: "live".into(),
                initiated: None,
            },
            PendingUpload {
                key: K3.into(),
                upload_id: "stale".into(),
                initiated: None,
            },
            PendingUpload {
                key: "web10/2024/x.tar.zst".into(),
                upload_id: "other-host".into(),
                initiated: None,
            },
        ],
        ..Default::default()
    };
    let rows = [row(1, K1, 0, "uploading"), row(2, K2, 0, "uploading")];
    let up = [uploading(1, "blog", K1, "done"), uploading(2, "blog", K2, "live")];
    // blog is running: nothing of it is touched, the shop upload goes.
    let p = plan(&inv, &rows, &up, &["blog"]);
    assert!(p.imports.is_empty(), "{p:#?}");
    assert!(p.stale_rows.is_empty());
    assert_eq!(
        p.in_progress,
        vec![Upload {
            key: K2.into(),
            upload_id: "live".into()
        }]
    );
    assert_eq!(
        p.aborts,
        vec![Upload {
            key: K3.into(),
            upload_id: "stale".into()
        }]
    );

    // Nothing runs: the finished object is imported over its row, the
    // other row is stale and both uploads are aborted.
    let p = plan(&inv, &rows, &up, &[]);
    assert_eq!(p.imports.len(), 1);
    assert_eq!(p.imports[0].existing_id, Some(1));
    assert_eq!(
        p.stale_rows,
        vec![StaleRow {
            id: 2,
            site: "blog".into(),
            key: K2.into()
        }]
    );
    assert_eq!(p.aborts.len(), 2);
    assert!(p.in_progress.is_empty());
}

#[test]
fn other_objects_are_reported_not_touched() {
    let inv = ServerInventory {
        objects: vec![obj("web1/notes.txt", 3), obj("web1/2024/12/25/junk.tar.zst", 3)],
        ..Default::default()
    };
    let p = plan(&inv, &[], &[], &[]);
    assert_eq!(p.unrecognised, vec!["web1/2024/12/25/junk.tar.zst", "web1/notes.txt"]);
    assert!(p.is_empty());
}

#[test]
fn without_an_upload_listing_recorded_uploads_are_aborted_by_id_and_the_rest_still_happens() {
    // K1 listed but unknown (import), K2's row complete but gone (missing),
    // two interrupted backups (one running now), no upload listing.
    let inv = ServerInventory {
        objects: vec![obj(K1, 100)],
        uploads_not_listable: true,
        ..Default::default()
    };
    let rows = [row(1, K2, 200, "complete")];
    let up = [
        uploading(7, "blog", K3, "id+with/slash="),
        uploading(
            8,
            "shop",
            "web1/2024/12/28/shop-backup-20241228-000000.tar.zst",
            "busy-one",
        ),
        UploadingRow {
            upload_id: None,
            ..uploading(9, "blog", "web1/2024/12/29/blog-backup-20241229-000000.tar.zst", "")
        },
    ];
    let p = plan(&inv, &rows, &up, &["shop"]);
    assert_eq!(p.open_uploads, OpenUploads::NotListable);
    assert_eq!(p.imports.len(), 1);
    assert_eq!(p.missing.len(), 1);
    assert_eq!(
        p.aborts,
        vec![Upload {
            key: K3.into(),
            upload_id: "id+with/slash=".into()
        }]
    );
    let stale: Vec<i64> = p.stale_rows.iter().map(|s| s.id).collect();
    assert_eq!(stale, [7, 9]);
    assert_eq!(p.usage_after_bytes, 100);

    // With a listing, a recorded upload that is not listed is gone already.
    let listed = ServerInventory {
        uploads_not_listable: false,
        ..inv
    };
    let p = plan(&listed, &rows, &up, &["shop"]);
    assert_eq!(p.open_uploads, OpenUploads::Listed);
    assert!(p.aborts.is_empty(), "{:?}", p.aborts);
}
