//! `restore` and `verify` end to end: round trips by id and by key on a
//! fresh host (against both S3 servers of the rig, see `per_server!`),
//! stock tools as the reference, corruption, and hostile archives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn site_toml(name: &str, path: &Path) -> String {
    format!("[[sites]]\nname = \"{name}\"\npath = \"{}\"\n", path.display())
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

/// A workspace with one rich site backed up to the rig's first bucket.
struct BackedUp {
    rig: Rig,
    ws: Workspace,
    site: PathBuf,
    id: i64,
    key: String,
    sha256: String,
}

per_server!(
    restore_by_id_gives_an_identical_tree,
    restore_and_verify_by_key_on_a_fresh_host
);

fn backed_up_on(rig: &Rig, name: &str, random_bytes: usize) -> BackedUp {
    let rig = rig.clone();
    let mut ws = Workspace::new(name);
    let site = make_rich_site(ws.path(), "site", random_bytes);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = json_of(&out);
    let archive = &report["results"][0]["archive"];
    BackedUp {
        id: archive["id"].as_i64().unwrap(),
        key: archive["key"].as_str().unwrap().to_string(),
        sha256: archive["sha256"].as_str().unwrap().to_string(),
        rig,
        ws,
        site,
    }
}

fn backed_up(name: &str, random_bytes: usize) -> BackedUp {
    backed_up_on(&Rig::garage(), name, random_bytes)
}

fn list_json(ws: &Workspace) -> Vec<serde_json::Value> {
    let out = ws.cmd().args(["--json", "list", "--all"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    json_of(&out).as_array().unwrap().clone()
}

fn restore_by_id_gives_an_identical_tree(rig: &Rig) {
    let b = backed_up_on(rig, "restore-id", 300_000);
    let dir = b.ws.path().join("restored");
    let out =
        b.ws.cmd()
            .args(["--json", "restore", &b.id.to_string(), "--to"])
            .arg(&dir)
            .output()
            .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["key"], b.key.as_str());
    assert_eq!(report["sha256"], b.sha256.as_str());
    let sources: Vec<&str> = report["checked_against"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["catalog", "sidecar"], "{report}");

    assert_same_tree(&b.site, &dir.join("files"));
    assert_eq!(entries_of(&dir), ["files", "manifest.json"], "nothing else left in DIR");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["site"], "blog");

    // A second restore into the same, now full, directory is refused.
    let out =
        b.ws.cmd()
            .args(["restore", &b.id.to_string(), "--to"])
            .arg(&dir)
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));

    // --with-db on an archive without a database dump says so and fails.
    let out =
        b.ws.cmd()
            .args(["restore", &b.id.to_string(), "--with-db", "--db-name", "nodump", "--to"])
            .arg(b.ws.path().join("db"))
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("holds no database dump"), "{}", stderr(&out));
}

fn restore_and_verify_by_key_on_a_fresh_host(rig: &Rig) {
    let b = backed_up_on(rig, "restore-key", 200_000);
    // A new host: empty state directory, and the archive's bucket is only
    // the second server, so the key has to be searched for in order.
    let mut fresh = Workspace::new("fresh");
    fresh.host_id = b.ws.host_id.clone();
    fresh.write_config("");
    fresh.set_env(b.rig.server_env(1, &b.rig.buckets[1]));
    fresh.set_env(b.rig.server_env(2, &b.rig.buckets[0]));
    assert!(!fresh.state_dir().exists());

    let dir = fresh.path().join("restored");
    let out = fresh
        .cmd()
        .args(["restore", &b.key, "--to"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("matches the checksum file"), "{}", stdout(&out));
    assert_same_tree(&b.site, &dir.join("files"));

    let out = fresh.cmd().args(["--json", "verify", &b.key]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let v = json_of(&out);
    let r = &v["results"][0];
    assert_eq!(r["ok"], true, "{v}");
    assert_eq!(r["server_id"], 2, "{v}");
    assert_eq!(r["sha256"], b.sha256.as_str());
    assert_eq!(r["checked_against"][0]["source"], "sidecar");
    assert_eq!(r["site"], "blog");

    // A key no server has: exit 1, naming what was tried.
    let missing = format!("{}/2020/01/01/blog-backup-20200101-000000.tar.zst", b.ws.host_id);
    let out = fresh
        .cmd()
        .args(["restore", &missing, "--to"])
        .arg(fresh.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no configured server has it"), "{}", stderr(&out));
    assert!(!fresh.path().join("none").exists());
}

#[test]
fn stock_tools_give_the_same_tree() {
    let b = backed_up("restore-stock", 200_000);
    let ours = b.ws.path().join("ours");
    let out =
        b.ws.cmd()
            .args(["restore", &b.key, "--to"])
            .arg(&ours)
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let theirs = b.ws.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let out = pipeline(&format!(
        "aws --endpoint-url '{}' s3 cp 's3://{}/{}' - | zstd -dc | tar -x -C '{}'",
        b.rig.endpoint,
        b.rig.buckets[0],
        b.key,
        theirs.display()
    ))
    .envs(b.rig.aws_env())
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&theirs.join("files"), &ours.join("files"));
    assert_same_tree(&b.site, &theirs.join("files"));
}

#[test]
fn a_corrupted_object_fails_verify_and_restore() {
    // Incompressible content: zstd stores it raw, so a flipped byte still
    // decodes and only the checksum at the end can catch it.
    let b = backed_up("corrupt", 1_000_000);
    let out = b.ws.cmd().args(["verify", &b.id.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(list_json(&b.ws)[0]["verify_ok"], true);

    let file = b.ws.path().join("object.tar.zst");
    b.rig.download(&b.rig.buckets[0], &b.key, &file);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    b.rig.upload(&b.rig.buckets[0], &b.key, &file);
    assert_ne!(sha256_file(&file), b.sha256);

    let out =
        b.ws.cmd()
            .args(["--json", "verify", &b.id.to_string()])
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v = json_of(&out);
    assert_eq!(v["ok"], false);
    let error = v["results"][0]["error"].as_str().unwrap();
    assert!(error.contains("checksum mismatch"), "{error}");
    assert_eq!(v["results"][0]["sha256"], sha256_file(&file).as_str());
    let row = &list_json(&b.ws)[0];
    assert_eq!(row["verify_ok"], false, "{row}");
    assert!(row["verified_at"].is_string(), "{row}");

    let dir = b.ws.path().join("restored");
    let out =
        b.ws.cmd()
            .args(["restore", &b.id.to_string(), "--to"])
            .arg(&dir)
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!stdout(&out).contains("Restored"), "{}", stdout(&out));
    assert!(stderr(&out).contains("checksum mismatch"), "{}", stderr(&out));
    assert!(stderr(&out).contains("partial tree was removed"), "{}", stderr(&out));
    assert!(!dir.exists(), "the restore created DIR, so it removes it");

    // An existing empty DIR stays, empty; --keep-partial keeps the tree
    // under a name that says it is untrusted.
    std::fs::create_dir(&dir).unwrap();
    let out =
        b.ws.cmd()
            .args(["restore", &b.id.to_string(), "--keep-partial", "--to"])
            .arg(&dir)
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NOT TRUSTWORTHY"), "{}", stderr(&out));
    assert_eq!(entries_of(&dir), ["UNTRUSTED-partial-restore"]);
}

/// Upload a hostile archive under the host prefix, restore it by key, and
/// check it is refused naming `entry`, with nothing written outside DIR.
fn assert_refused(case: &str, build: impl FnOnce(&Path) -> (Vec<u8>, String)) {
    let rig = Rig::get();
    let mut ws = Workspace::new(case);
    ws.write_config("");
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let outside = ws.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    let (archive, entry) = build(&outside);
    let file = ws.path().join("evil.tar.zst");
    std::fs::write(&file, archive).unwrap();
    let key = format!("{}/2024/01/01/evil-backup-20240101-000000.tar.zst", ws.host_id);
    rig.upload(&rig.buckets[0], &key, &file);

    let dir = ws.path().join("restore");
    let out = ws.cmd().args(["restore", &key, "--to"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{case}: {}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("refusing archive entry {entry:?}")),
        "{case}: the error must name {entry:?}: {err}"
    );
    assert!(!stdout(&out).contains("Restored"), "{case}");
    assert_eq!(entries_of(&outside), ["secret"], "{case}: written outside DIR");
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(outside.join("secret")).unwrap().nlink(), 1, "{case}");
    assert!(!dir.exists(), "{case}: the partial tree is removed");

    let out = ws.cmd().args(["verify", &key]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{case}: verify must fail too");
    assert!(
        stdout(&out).contains("refusing archive entry"),
        "{case}: {}",
        stdout(&out)
    );
}

#[test]
fn a_parent_dir_entry_is_refused() {
    assert_refused("evil-dotdot", |_| {
        // From the staging directory DIR/.sitebackup-partial-PID/ this is
        // exactly the `outside` directory next to DIR.
        let name = b"files/../../../outside/evil".to_vec();
        (
            crafted(&[Raw {
                name: &name,
                kind: tar::EntryType::Regular,
                link: None,
                data: b"pwned",
            }]),
            "files/../../../outside/evil".into(),
        )
    });
}

#[test]
fn an_absolute_entry_is_refused() {
    assert_refused("evil-absolute", |outside| {
        let name = format!("{}/evil", outside.display());
        (
            crafted(&[Raw {
                name: name.as_bytes(),
                kind: tar::EntryType::Regular,
                link: None,
                data: b"pwned",
            }]),
            name,
        )
    });
}

#[test]
fn a_file_under_a_symlink_to_root_is_refused() {
    assert_refused("evil-symlink", |outside| {
        let under = format!("files/root{}/evil", outside.display());
        (
            crafted(&[
                Raw {
                    name: b"files/",
                    kind: tar::EntryType::Directory,
                    link: None,
                    data: b"",
                },
                Raw {
                    name: b"files/root",
                    kind: tar::EntryType::Symlink,
                    link: Some(b"/"),
                    data: b"",
                },
                Raw {
                    name: under.as_bytes(),
                    kind: tar::EntryType::Regular,
                    link: None,
                    data: b"pwned",
                },
            ]),
            under,
        )
    });
}

#[test]
fn a_hard_link_to_an_outside_path_is_refused() {
    assert_refused("evil-hardlink", |outside| {
        let target = format!("{}/secret", outside.display());
        (
            crafted(&[Raw {
                name: b"files/secret",
                kind: tar::EntryType::Link,
                link: Some(target.as_bytes()),
                data: b"",
            }]),
            "files/secret".into(),
        )
    });
    assert_refused("evil-hardlink-rel", |_| {
        (
            crafted(&[Raw {
                name: b"files/secret",
                kind: tar::EntryType::Link,
                link: Some(b"../../outside/secret"),
                data: b"",
            }]),
            "files/secret".into(),
        )
    });
}

#[test]
fn the_database_dump_is_laid_out_for_an_import() {
    let rig = Rig::get();
    let db = Db::get();
    let data = db.create("sbt_restore");
    db.sql(
        Some(&data.name),
        "CREATE TABLE wp_options (k VARCHAR(20), v TEXT); INSERT INTO wp_options VALUES ('blogname', 'Restored blog')",
    );
    let mut ws = Workspace::new("restore-db");
    let site = ws.make_site("site", 10_000);
    db.write_wp_config(&site, &data.name, &db.password);
    ws.write_config(&site_toml("blog", &site));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let key = json_of(&out)["results"][0]["archive"]["key"]
        .as_str()
        .unwrap()
        .to_string();

    let dir = ws.path().join("restored");
    let out = ws
        .cmd()
        .args(["--json", "restore", &key, "--to"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let report = json_of(&out);
    let dump = dir.join(format!("database/{}.sql", data.name));
    assert_eq!(
        report["database_dumps"],
        serde_json::json!([dump.to_str().unwrap()]),
        "{report}"
    );
    let sql = std::fs::read_to_string(&dump).unwrap();
    assert!(
        sql.contains("CREATE TABLE `wp_options`") && sql.contains("'Restored blog'"),
        "{sql}"
    );
    assert_eq!(report["manifest"]["database"]["name"], data.name.as_str(), "{report}");
    assert_eq!(entries_of(&dir), ["database", "files", "manifest.json"]);
    assert_same_tree(&site, &dir.join("files"));
}
