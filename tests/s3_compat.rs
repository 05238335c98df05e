//! S3 addressing and signing quirks, against both S3 servers of the rig
//! (Garage and s3s-fs, see `per_server!`): upload ids that need
//! percent-encoding, virtual-hosted-style addressing, a region the server
//! does not use, and a server without an essential call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use bytes::Bytes;
use common::http_proxy::{Fault, HttpProxy, MANGLED_SUFFIX};
use common::*;
use sitebackup::config::{Endpoint, ServerKind};
use sitebackup::storage::{self, ObjectStore};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

per_server!(
    upload_ids_with_plus_slash_and_equals_are_percent_encoded_and_signed,
    virtual_hosted_style_backs_up_and_restores,
    a_region_the_server_does_not_use_is_named,
    a_server_without_upload_part_fails_over_naming_the_call,
    a_part_damaged_on_the_way_never_passes_unnoticed,
);

fn site_toml(name: &str, path: &std::path::Path) -> String {
    format!("[[sites]]\nname = \"{name}\"\npath = \"{}\"\n\n", path.display())
}

/// `rig`'s server config, reached at `endpoint` instead.
fn via(rig: &Rig, endpoint: &str, secret: Option<&str>) -> Arc<dyn ObjectStore> {
    let mut server = rig.server_config(1, &rig.buckets[0]);
    if let ServerKind::S3(s) = &mut server.kind {
        s.endpoint = Endpoint::parse(endpoint).unwrap();
        if let Some(secret) = secret {
            s.secret_key = sitebackup::config::Secret::new(secret.to_string());
        }
    }
    storage::Target::from_config(&server, &Default::default(), 0)
        .store()
        .unwrap()
}

/// SigV4's encoding of a query value: all but `A-Z a-z 0-9 - _ . ~`,
/// upper-case hex. Written out here, independently of the crate's.
fn sigv4_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Neither server issues upload ids with `+`, `/` or `=` (Garage's are
/// hex, s3s-fs's UUIDs), so a proxy appends such characters to the id in
/// the CreateMultipartUpload answer. Every later request naming the id —
/// UploadPart, CompleteMultipartUpload, AbortMultipartUpload — must carry
/// it percent-encoded (checked on the raw request line the proxy saw) and
/// correctly signed: the real server checks the signature first, so it
/// answers "no such upload" (or "invalid id") rather than a signature
/// error. The same requests with a wrong secret get the signature error,
/// so the check can fail. rust-s3's own abort, which writes the id raw,
/// is shown failing the encoding check.
fn upload_ids_with_plus_slash_and_equals_are_percent_encoded_and_signed(rig: &Rig) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = HttpProxy::start(&rig.endpoint, Fault::MangleUploadIds);
    let ws = Workspace::new("upload-id");
    let key = format!("{}/2024/12/25/blog-backup-20241225-083000.tar.zst", ws.host_id);
    let store = via(rig, &proxy.url, None);
    let id = rt.block_on(store.create_multipart(&key, &BTreeMap::new())).unwrap();
    assert!(id.ends_with(MANGLED_SUFFIX), "{id}");
    let real_id = id.trim_end_matches(MANGLED_SUFFIX).to_string();
    let encoded = format!("uploadId={}", sigv4_encode(&id));
    assert!(encoded.contains("%2B") && encoded.contains("%2F") && encoded.contains("%3D"));

    let part = Bytes::from(random(1000));
    let not_signature_errors = |what: &str, r: Result<(), storage::StorageError>| match r {
        Ok(()) => {}
        Err(e) => assert_ne!(e.kind(), "credentials", "{what}: the server refused the signature: {e}"),
    };
    let seen_before = proxy.seen().len();
    not_signature_errors(
        "upload part",
        rt.block_on(store.upload_part(&key, &id, 1, part.clone())).map(|_| ()),
    );
    let fake = storage::CompletedPart {
        part_number: 1,
        etag: "\"0\"".into(),
        checksum_crc32c: None,
    };
    not_signature_errors(
        "complete",
        rt.block_on(store.complete_multipart(&key, &id, vec![fake.clone()])),
    );
    not_signature_errors("abort", rt.block_on(store.abort_multipart(&key, &id)));
    let seen = proxy.seen()[seen_before..].to_vec();
    let with_id: Vec<_> = seen.iter().filter(|s| s.target.contains("uploadId=")).collect();
    let methods: Vec<&str> = with_id.iter().map(|s| s.method.as_str()).collect();
    assert!(
        ["PUT", "POST", "DELETE"].iter().all(|m| methods.contains(m)),
        "{seen:#?}"
    );
    for s in &with_id {
        assert!(
            s.target.split(['?', '&']).any(|p| p == encoded),
            "{} {}: upload id not percent-encoded as SigV4 wants ({encoded})",
            s.method,
            s.target
        );
        // 400 or 404: no such upload (or an id it cannot parse), found
        // after the signature passed; 403 would be a refused signature.
        assert!(
            matches!(s.status, Some(400 | 404)),
            "{} {}: answered {:?}",
            s.method,
            s.target,
            s.status
        );
    }

    // A wrong secret through the same path: the server does check here.
    let bad = via(rig, &proxy.url, Some("not-the-secret-at-all-0000"));
    let e = rt.block_on(bad.complete_multipart(&key, &id, vec![fake])).unwrap_err();
    assert_eq!(e.kind(), "credentials", "{e}");

    // rust-s3's abort writes the id into the URL raw.
    let seen_before = proxy.seen().len();
    let bucket = s3::Bucket::new(
        &rig.buckets[0],
        s3::region::Region::Custom {
            region: rig.region.clone(),
            endpoint: proxy.url.clone(),
        },
        s3::creds::Credentials::new(Some(&rig.access_key), Some(&rig.secret_key), None, None, None).unwrap(),
    )
    .unwrap()
    .with_path_style();
    let _ = rt.block_on(bucket.abort_upload(&key, &id));
    let raw = &proxy.seen()[seen_before];
    assert!(
        raw.target.contains("uploadId=") && !raw.target.contains(&encoded),
        "{raw:?}"
    );

    // The real upload was untouched by all this: it completes.
    let data = Bytes::from(random(1000));
    let direct = via(rig, &rig.endpoint, None);
    let p = rt
        .block_on(direct.upload_part(&key, &real_id, 1, data.clone()))
        .unwrap();
    rt.block_on(direct.complete_multipart(&key, &real_id, vec![p])).unwrap();
    let file = ws.path().join("got");
    rig.download(&rig.buckets[0], &key, &file);
    assert_eq!(std::fs::read(&file).unwrap(), data.to_vec());
    rt.block_on(direct.delete(&key)).unwrap();
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private s3s-fs that takes virtual-hosted-style names under `domain`
/// (with one, it reads any other `Host` as a bucket name, so the rig's is
/// path-style only). Stopped on drop.
struct VhostS3s {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl VhostS3s {
    fn start(rig: &Rig, domain: &str, bucket: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(bucket)).unwrap();
        let port = free_port();
        let child = std::process::Command::new(std::env::var("SB_TEST_S3S_BIN").expect("SB_TEST_S3S_BIN (the rig)"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &rig.access_key, "--secret-key", &rig.secret_key])
            .args(["--domain", &format!("{domain}:{port}")])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, _dir: dir, port }
    }
}

impl Drop for VhostS3s {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `path_style = false`: the bucket goes in the host name. Names under
/// `*.localhost` do not resolve here, so the binary reaches the server
/// through the proxy as an HTTP forward proxy (`http_proxy`), which keeps
/// the `Host` header as it is. Garage takes such names under its
/// `root_domain` (`.s3.garage.localhost` in the rig); s3s-fs under
/// `--domain`, on a private instance.
fn virtual_hosted_style_backs_up_and_restores(rig: &Rig) {
    let (endpoint, bucket, upstream, _s3s) = match rig.kind {
        S3Kind::Garage => {
            let port = rig.endpoint.rsplit(':').next().unwrap().to_string();
            (
                format!("http://s3.garage.localhost:{port}"),
                rig.buckets[0].clone(),
                rig.endpoint.clone(),
                None,
            )
        }
        S3Kind::S3sFs => {
            let s = VhostS3s::start(rig, "s3s.localhost", "sb-vhost");
            (
                format!("http://s3s.localhost:{}", s.port),
                "sb-vhost".to_string(),
                format!("http://127.0.0.1:{}", s.port),
                Some(s),
            )
        }
    };
    let host = endpoint.trim_start_matches("http://");
    let proxy = HttpProxy::start(&upstream, Fault::None);
    let mut ws = Workspace::new("vhost");
    let site = ws.make_site("site", 6_000_000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &bucket));
    ws.set_env(
        [
            ("S3_SERVER_1_ENDPOINT", endpoint.as_str()),
            ("S3_SERVER_1_PATH_STYLE", "false"),
            ("http_proxy", proxy.url.as_str()),
            ("HTTP_PROXY", proxy.url.as_str()),
            ("no_proxy", ""),
            ("NO_PROXY", ""),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let archive = &report["results"][0]["archive"];
    let key = archive["key"].as_str().unwrap();

    // Every request named the bucket in the host, none in the path.
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "PUT" && s.target.contains("partNumber="))
    );
    for s in &seen {
        assert_eq!(s.header("host"), Some(format!("{bucket}.{host}").as_str()), "{s:?}");
        assert!(!s.target.starts_with(&format!("/{bucket}/")), "{s:?}");
    }
    let dir = ws.path().join("restored");
    let out = ws
        .cmd()
        .args(["restore", &archive["id"].to_string(), "--to"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let photo = "wp-content/uploads/2024/photo.bin";
    assert_eq!(
        std::fs::read(dir.join("files").join(photo)).unwrap(),
        std::fs::read(site.join(photo)).unwrap()
    );
    // Cross-checked path-style with the aws cli where the rig's server holds it.
    if rig.kind == S3Kind::Garage {
        let file = ws.path().join("dl.tar.zst");
        rig.download(&bucket, key, &file);
        assert_eq!(sha256_file(&file), archive["sha256"].as_str().unwrap());
    }
}

/// Garage refuses a request signed for another region and names its own:
/// the error names both. s3s-fs takes any region (it checks the signature
/// with the region the request names), so there the same setting works.
fn a_region_the_server_does_not_use_is_named(rig: &Rig) {
    let mut ws = Workspace::new("region");
    let site = ws.make_site("site", 1000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_REGION".to_string(), "eu-west-3".to_string())]);
    let out = ws.cmd().args(["--json", "servers"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let server = &v["servers"][0];
    match rig.kind {
        S3Kind::Garage => {
            assert_eq!(out.status.code(), Some(1), "{v}");
            assert_eq!(server["status"], "region", "{v}");
            let error = server["error"].as_str().unwrap();
            assert!(
                error.contains("\"eu-west-3\"") && error.contains(&format!("expects \"{}\"", rig.region)),
                "{error}"
            );
            assert!(error.contains("S3_SERVER_N_REGION"), "{error}");
            let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
            let text = format!("{}{}", stdout(&out), stderr(&out));
            assert!(text.contains("Region mismatch"), "{text}");
        }
        S3Kind::S3sFs => {
            assert!(out.status.success(), "{v}");
            assert_eq!(server["status"], "ok", "{v}");
            let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
            assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        }
    }
}

/// UploadPart is essential: a server answering it with 501 (played by a
/// proxy in front of the real one) fails loudly, naming the call, and the
/// archive goes to the next server; nothing is left open on the first.
fn a_server_without_upload_part_fails_over_naming_the_call(rig: &Rig) {
    let proxy = HttpProxy::start(&rig.endpoint, Fault::PartsNotImplemented);
    let mut ws = Workspace::new("no-parts");
    let site = ws.make_site("site", 1000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone())]);
    ws.set_env(rig.server_env(2, &rig.buckets[1]));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["results"][0];
    assert_eq!(r["archive"]["server_id"], 2, "{report}");
    let reason = r["attempts"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("does not implement upload part"), "{report}");
    let parts = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "PUT" && s.target.contains("partNumber="))
        .count();
    assert_eq!(parts, 1, "not retried: {:?}", proxy.seen());
    let prefix = format!("{}/", ws.host_id);
    assert!(rig.pending_uploads(&rig.buckets[0], &prefix).is_empty());
    assert!(rig.data_keys(&rig.buckets[0], &prefix).is_empty());
}

/// A proxy flips one byte of the first part. Garage checks the part's
/// CRC32C and refuses it, so it is sent again and the archive is whole.
/// s3s-fs neither checks nor echoes part checksums: the damaged part is
/// stored, the backup logs once that parts go unverified there, and
/// `verify` catches the damage with the archive's SHA-256.
fn a_part_damaged_on_the_way_never_passes_unnoticed(rig: &Rig) {
    let proxy = HttpProxy::start(&rig.endpoint, Fault::FlipByteInFirstPart);
    let mut ws = Workspace::new("flip");
    let site = ws.make_site("site", 2_000_000);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone())]);
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(proxy.seen().iter().any(|s| s.damaged), "nothing was damaged");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = report["results"][0]["archive"]["id"].to_string();
    let verify = ws.cmd().args(["verify", &id]).output().unwrap();
    let unverified = stderr(&out).contains("Part checksums are not verified by this server");
    match rig.kind {
        S3Kind::Garage => {
            assert!(!unverified, "{}", stderr(&out));
            assert!(verify.status.success(), "{}\n{}", stdout(&verify), stderr(&verify));
        }
        S3Kind::S3sFs => {
            assert!(unverified, "{}", stderr(&out));
            assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
            let text = format!("{}{}", stdout(&verify), stderr(&verify));
            assert!(text.to_lowercase().contains("checksum"), "{text}");
        }
    }
}
