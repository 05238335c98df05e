//! Provider keys at rest: encrypted with Fernet, readable by the reference
//! implementation (Python's `cryptography`), re-encrypted by `rotate-key`
//! while `serve` runs.

use crate::common::{Rig, stderr};
use crate::support::{Master, wait_for};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// Every file under `dir` (database, WAL, key file, …) with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Decrypt the stored keys of provider `id` with Python's Fernet, using
/// every key in the key file (a `MultiFernet`, as the file documents).
fn python_decrypt(state_dir: &Path, key_file: &Path, id: i64) -> Result<(String, String), String> {
    let script = r#"
import sqlite3, sys
from cryptography.fernet import Fernet, MultiFernet
db, key_file, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
keys = [l.strip() for l in open(key_file) if l.strip() and not l.startswith('#')]
f = MultiFernet([Fernet(k) for k in keys])
row = sqlite3.connect(db).execute(
    "SELECT access_key_enc, secret_key_enc FROM providers WHERE id = ?", (pid,)).fetchone()
print(f.decrypt(row[0].encode()).decode())
print(f.decrypt(row[1].encode()).decode())
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(state_dir.join("master.db"))
        .arg(key_file)
        .arg(id.to_string())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(stderr(&out));
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    Ok((lines.next().unwrap().into(), lines.next().unwrap().into()))
}

#[test]
fn secrets_are_fernet_encrypted_at_rest_and_the_reference_implementation_reads_them() {
    let rig = Rig::get();
    let m = Master::start("at-rest");
    let id = m.create_provider(&Master::provider_body(&rig, "p", &rig.buckets[0], true))["id"]
        .as_i64()
        .unwrap();
    let files = files_under(&m.state_dir());
    assert!(files.iter().any(|(p, _)| p.ends_with("master.db")));
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, &rig.secret_key),
            "the secret key is in {} as plain text",
            path.display()
        );
        assert!(
            !contains(bytes, &rig.access_key),
            "the access key is in {} as plain text",
            path.display()
        );
    }
    let key_file = m.state_dir().join("fernet.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (access, secret) = python_decrypt(&m.state_dir(), &key_file, id).unwrap();
    assert_eq!((access, secret), (rig.access_key.clone(), rig.secret_key.clone()));
}

fn lease_secret(m: &Master, token: &str) -> String {
    let (status, lease) = m.call(
        "POST",
        "/api/v1/node/leases",
        Some(token),
        Some(&json!({"purpose": "read"})),
    );
    assert_eq!(status, 200, "{lease}");
    lease["providers"][0]["secret_key"].as_str().unwrap().to_string()
}

#[test]
fn rotate_key_while_serve_runs_and_leases_still_carry_the_right_secret() {
    let rig = Rig::get();
    let m = Master::start("rotate");
    let id = m.create_provider(&Master::provider_body(&rig, "p", &rig.buckets[0], true))["id"]
        .as_i64()
        .unwrap();
    let (_, token) = m.add_node("web-rotate");
    assert_eq!(lease_secret(&m, &token), rig.secret_key);
    let key_file = m.state_dir().join("fernet.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    let out = m.ws.cmd().args(["master", "rotate-key"]).output().unwrap();
    assert!(out.status.success(), "rotate-key: {}", stderr(&out));
    assert!(stderr(&out).contains("Told master serve"), "{}", stderr(&out));
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(new_key.lines().count(), 1, "the old key is retired");

    // The reference implementation reads the rows with the new file alone,
    // and no longer with the old key.
    let (_, secret) = python_decrypt(&m.state_dir(), &key_file, id).unwrap();
    assert_eq!(secret, rig.secret_key);
    let old_file = m.ws.path().join("old.key");
    std::fs::write(&old_file, &old_key).unwrap();
    assert!(python_decrypt(&m.state_dir(), &old_file, id).is_err());

    // serve follows: a lease is right, a new provider is sealed with the
    // new key, and the log says why it re-read the file.
    assert_eq!(lease_secret(&m, &token), rig.secret_key);
    let id2 = m.create_provider(&Master::provider_body(&rig, "p2", &rig.buckets[1], false))["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        python_decrypt(&m.state_dir(), &key_file, id2).unwrap().1,
        rig.secret_key
    );
    wait_for(10, "the key reload in the log", || {
        m.log_text().contains("Key ring re-read").then_some(())
    });
    let log = m.log_text();
    assert!(
        !log.contains(&rig.secret_key) && !log.contains(new_key.trim()),
        "a secret is in the log"
    );
}

#[test]
fn an_interrupted_rotation_is_finished_by_the_next_run() {
    let rig = Rig::get();
    let m = Master::start("rotate-resume");
    let id = m.create_provider(&Master::provider_body(&rig, "p", &rig.buckets[0], true))["id"]
        .as_i64()
        .unwrap();
    let (_, token) = m.add_node("web-resume");
    let key_file = m.state_dir().join("fernet.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    // The state a crash after step 1 leaves: a new key first, the old one
    // after it, the rows still sealed with the old one.
    let new_key = Command::new("python3")
        .args([
            "-c",
            "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())",
        ])
        .output()
        .unwrap();
    let new_key = String::from_utf8(new_key.stdout).unwrap();
    std::fs::write(&key_file, format!("{}\n{}", new_key.trim(), old_key)).unwrap();
    // serve picks up the two-key file and still leases.
    assert_eq!(lease_secret(&m, &token), rig.secret_key);
    let out = m.ws.cmd().args(["--json", "master", "rotate-key"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["resumed"], true, "{report}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), new_key.trim());
    assert_eq!(python_decrypt(&m.state_dir(), &key_file, id).unwrap().1, rig.secret_key);
    assert_eq!(lease_secret(&m, &token), rig.secret_key);
}
