//! `master serve` as a service: systemd notifications, SIGTERM, TLS, and
//! the refusal of plain HTTP off loopback.

use crate::common::{Workspace, stderr};
use crate::support::{Master, free_port, wait_for};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Collects what serve sends to `NOTIFY_SOCKET`.
fn notify_socket(path: &std::path::Path) -> Arc<Mutex<Vec<String>>> {
    let sock = UnixDatagram::bind(path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    got
}

#[test]
fn serve_notifies_systemd_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let got = notify_socket(&path);
    let mut m = Master::start_with("notify", "", vec![("NOTIFY_SOCKET".into(), path.display().to_string())]);
    wait_for(10, "READY=1", || {
        got.lock().unwrap().iter().any(|m| m.contains("READY=1")).then_some(())
    });
    // READY comes after the bind: the API answers (start_with waited too).
    assert_eq!(m.call("GET", "/api/v1/openapi.json", None, None).0, 200);
    assert!(m.state_dir().join("serve.pid").exists());
    let status = m.stop();
    assert!(status.success(), "{status:?}");
    assert!(
        got.lock().unwrap().iter().any(|m| m.contains("STOPPING=1")),
        "{:?}",
        got.lock().unwrap()
    );
    assert!(!m.state_dir().join("serve.pid").exists(), "the pid file is removed");
}

#[test]
fn serve_reconciles_on_its_own_schedule() {
    let rig = crate::common::Rig::get();
    let m = Master::start_with("scheduled", "reconcile_interval_secs = 1\n", Vec::new());
    let pid = m.create_provider(&Master::provider_body(&rig, "p", &rig.buckets[3], true))["id"]
        .as_i64()
        .unwrap();
    let (node, _) = m.add_node("web-scheduled");
    // An object under the node's prefix that nobody reported: a scheduled
    // (real) run counts it in the provider's usage.
    crate::support::put_object(&rig, &rig.buckets[3], &format!("{node}/x/stray.bin"), 123, m.ws.path());
    wait_for(30, "a scheduled reconciliation to set the usage", || {
        let (_, p) = m.admin("GET", &format!("/api/v1/storage/providers/{pid}"), None);
        (p["used_bytes"] == 123).then_some(())
    });
    assert!(m.log_text().contains("Reconciliation finished."));
}

#[test]
fn serve_speaks_tls_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
    ];
    let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (ca_s, ca_key_s, cert_s, key_s) = (p(&ca), p(&ca_key), p(&cert), p(&key));
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &["-subj", "/CN=test-ca", "-keyout", &ca_key_s, "-out", &ca_s],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-x509", "-CA", &ca_s, "-CAkey", &ca_key_s],
            &ec[..],
            &["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
            &[
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-keyout",
                &key_s,
                "-out",
                &cert_s,
            ],
        ]
        .concat(),
    );
    let extra = format!("tls_cert = \"{}\"\ntls_key = \"{}\"\n", cert.display(), key.display());
    let mut m = Master::start_with("tls", &extra, Vec::new());
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    m.client = reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = m.url("/api/v1/openapi.json");
    assert!(url.starts_with("https://"));
    wait_for(30, "the TLS master", || m.client.get(&url).send().ok());
    let (status, nodes) = m.admin("GET", "/api/v1/nodes", None);
    assert_eq!((status, nodes), (200, serde_json::json!([])));
    // Plain HTTP to the TLS port gets no API answer.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/openapi.json", m.port))
        .send();
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[test]
fn plain_http_off_loopback_is_refused_with_the_key_named() {
    let ws = Workspace::new("plain");
    let config = format!(
        "[master_server]\nlisten = \"0.0.0.0:{}\"\nstate_dir = \"{}\"\n",
        free_port(),
        ws.state_dir().display()
    );
    std::fs::write(ws.path().join("config.toml"), config).unwrap();
    let out = ws.cmd().args(["master", "serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("master_server.listen") && err.contains("SITEBACKUP_MASTER_SERVER_LISTEN"),
        "{err}"
    );
    // serve before init says what to do.
    let config = format!(
        "[master_server]\nlisten = \"127.0.0.1:{}\"\nstate_dir = \"{}\"\n",
        free_port(),
        ws.state_dir().display()
    );
    std::fs::write(ws.path().join("config.toml"), config).unwrap();
    let out = ws.cmd().args(["master", "serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("master init"), "{}", stderr(&out));
    // A second init is refused; the first token stays the only one.
    assert!(ws.cmd().args(["master", "init"]).output().unwrap().status.success());
    let again = ws.cmd().args(["master", "init"]).output().unwrap();
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already initialised"), "{}", stderr(&again));
}
