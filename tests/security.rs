//! Issue 13: what the web user (who writes the site) or an archive controls
//! can run no code, leak no secret and exhaust nothing; files the tool
//! creates are private. Each test runs the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn local_server(id: u32, path: &Path) -> String {
    format!(
        "[[servers]]\nid = {id}\ntype = \"local\"\npath = \"{}\"\n\n",
        path.display()
    )
}

fn site_block(name: &str, path: &Path, extra: &str) -> String {
    format!("[[sites]]\nname = \"{name}\"\npath = \"{}\"\n{extra}\n", path.display())
}

/// The binary under `umask 022`, as from an operator's shell.
fn umask_022(ws: &Workspace, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin("sitebackup"));
    for (k, _) in std::env::vars() {
        if k.starts_with("S3_SERVER_") || k.starts_with("SITEBACKUP_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config").arg(ws.path().join("config.toml")).args(args);
    cmd.envs(&ws.env).current_dir(ws.path()).env("NO_COLOR", "1");
    cmd.output().unwrap()
}

#[test]
fn a_dot_env_in_the_current_directory_is_ignored_and_env_files_are_checked() {
    let ws = Workspace::new("dotenv");
    let site = ws.make_site("site", 1_000);
    let store = ws.path().join("store");
    std::fs::create_dir(&store).unwrap();
    ws.write_config(&format!("{}{}", local_server(1, &store), site_block("blog", &site, "")));
    // What a web user could drop into a site directory the tool runs from.
    let evil = ws.path().join("evil");
    let dotenv = ws.path().join(".env");
    std::fs::write(
        &dotenv,
        format!(
            "S3_SERVER_1_PATH={}\nLD_PRELOAD=/tmp/preload-value-xyz.so\n",
            evil.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = ws.cmd().args(["--json", "config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["config"]["servers"][0]["path"].as_str(),
        Some(store.to_str().unwrap()),
        "./.env was read: {doc}"
    );
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!evil.exists());

    // Named explicitly, it is read: S3_SERVER_* taken, others ignored by
    // name, never by value.
    let out = ws
        .cmd()
        .args(["--json", "--env-file", ".env", "config", "check"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["config"]["servers"][0]["path"].as_str(),
        Some(evil.to_str().unwrap())
    );
    let err = stderr(&out);
    assert!(err.contains("LD_PRELOAD"), "{err}");
    assert!(!err.contains("preload-value-xyz"), "{err}");

    // Writable by the group: refused, exit 2.
    std::fs::set_permissions(&dotenv, std::fs::Permissions::from_mode(0o620)).unwrap();
    let out = ws
        .cmd()
        .args(["--env-file", ".env", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("writable by group or others"), "{}", stderr(&out));
}

/// A fake `mariadb-dump` on `PATH` that records its environment and the
/// modes of what sitebackup has open while it runs (the spool file is its
/// stdout; the catalog and its WAL are open), then prints a tiny dump.
fn fake_dump_tool(ws: &Workspace) -> PathBuf {
    let bin = ws.path().join("fakebin");
    std::fs::create_dir(&bin).unwrap();
    let out = ws.path().join("seen");
    std::fs::create_dir(&out).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         env > '{out}/dump-env.txt'\n\
         spool=$(readlink /proc/$$/fd/1)\n\
         stat -c '%a %n' \"$spool\" \"$(dirname \"$spool\")\" '{state}'/catalog.db* > '{out}/modes.txt'\n\
         echo '-- fake dump'\n\
         echo 'CREATE TABLE t (id INT);'\n",
        out = out.display(),
        state = ws.state_dir().display()
    );
    let tool = bin.join("mariadb-dump");
    std::fs::write(&tool, script).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn path_with(bin: &Path) -> (String, String) {
    (
        "PATH".into(),
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
    )
}

#[test]
fn hooks_and_dump_tools_inherit_no_secret() {
    let mut ws = Workspace::new("child-env");
    let site = ws.make_site("site", 1_000);
    let store = ws.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let bin = fake_dump_tool(&ws);
    let seen = ws.path().join("seen");
    let db = "[sites.database]\nname = \"wp_fake\"\nuser = \"u\"\npassword = \"db-pass-do-not-inherit\"\nhost = \"127.0.0.1\"\nport = 1\n";
    let hooks = format!(
        "[sites.hooks]\nbefore = [\"env > '{}/hook-env.txt'\"]\n",
        seen.display()
    );
    ws.write_config(&format!(
        "{}{}{hooks}",
        local_server(1, &store),
        site_block("blog", &site, db)
    ));
    // A second server in the environment, as from sitebackup.env.
    let mut s3 = dead_server(2);
    s3.push(("S3_SERVER_2_SESSION_TOKEN".into(), "session-do-not-inherit".into()));
    for (k, v) in &mut s3 {
        if k.ends_with("SECRET_KEY") {
            *v = "s3-secret-do-not-inherit".into();
        }
    }
    ws.set_env(s3);
    ws.set_env([path_with(&bin)]);
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for file in ["hook-env.txt", "dump-env.txt"] {
        let text = std::fs::read_to_string(seen.join(file)).unwrap();
        assert!(text.contains("PATH="), "{file}: {text}");
        for secret in [
            "S3_SERVER_",
            "s3-secret-do-not-inherit",
            "session-do-not-inherit",
            "db-pass-do-not-inherit",
        ] {
            assert!(!text.contains(secret), "{secret} in {file}:\n{text}");
        }
    }
}

#[test]
fn files_the_tool_creates_are_private_under_umask_022_and_restores_keep_archived_modes() {
    let mut ws = Workspace::new("private");
    let site = ws.make_site("site", 10_000);
    std::fs::set_permissions(site.join("index.php"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(site.join("wp-content"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(site.join("wp-config.php"), "<?php // 0640\n").unwrap();
    std::fs::set_permissions(site.join("wp-config.php"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = ws.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = fake_dump_tool(&ws);
    let db = "[sites.database]\nname = \"wp_fake\"\nuser = \"u\"\npassword = \"pw\"\nhost = \"127.0.0.1\"\nport = 1\n";
    ws.write_config(&format!("{}{}", local_server(1, &store), site_block("blog", &site, db)));
    ws.set_env([path_with(&bin)]);

    let out = umask_022(&ws, &["backup", "blog"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // While the dump ran: the spool file and its directory, the catalog
    // and its WAL files.
    let modes = std::fs::read_to_string(ws.path().join("seen/modes.txt")).unwrap();
    let lines: Vec<&str> = modes.lines().collect();
    assert!(lines.len() >= 5, "spool, spool dir, catalog.db, -wal, -shm: {modes}");
    for line in &lines {
        let (m, name) = line.split_once(' ').unwrap();
        let want = if name.ends_with("/spool") { "700" } else { "600" };
        assert_eq!(m, want, "{name}: {modes}");
    }
    // After the run.
    let state = ws.state_dir();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("catalog.db")), 0o600);
    assert_eq!(mode(&state.join("locks")), 0o700);
    assert_eq!(mode(&state.join("locks/blog.lock")), 0o600);
    assert_eq!(mode(&state.join("install-id.json")), 0o600);
    // The local target's own directory keeps its mode; what is created
    // inside it is private.
    assert_eq!(mode(&store), 0o755);
    let mut files = 0;
    for e in walkdir::WalkDir::new(&store).min_depth(1) {
        let e = e.unwrap();
        let want = if e.file_type().is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(e.path()), want, "{}", e.path().display());
        files += usize::from(e.file_type().is_file());
    }
    assert!(files >= 2, "archive and sidecar");

    // Restore under the same umask: a target it creates is private, the
    // site's files keep their archived modes.
    let rows = list_json(&ws, &[]);
    let id = rows[0]["id"].to_string();
    let target = ws.path().join("restored");
    let out = umask_022(&ws, &["restore", &id, "--to", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&target), 0o700);
    for (rel, want) in [("index.php", 0o644), ("wp-content", 0o755), ("wp-config.php", 0o640)] {
        assert_eq!(mode(&target.join("files").join(rel)), want, "{rel}");
    }
}

#[test]
fn a_missing_local_directory_is_reported_and_failed_over_never_created() {
    let ws = Workspace::new("unmounted");
    let site = ws.make_site("site", 1_000);
    let unmounted = ws.path().join("nas");
    let second = ws.path().join("second");
    std::fs::create_dir(&second).unwrap();
    ws.write_config(&format!(
        "{}{}{}",
        local_server(1, &unmounted),
        local_server(2, &second),
        site_block("blog", &site, "")
    ));
    let out = ws.cmd().arg("servers").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Status: FAILED (directory missing — is it mounted?)"),
        "{text}"
    );
    assert!(text.contains("Status: OK"), "{text}");

    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = list_json(&ws, &[]);
    assert_eq!(rows[0]["server_id"], 2, "{rows:?}");
    assert!(!unmounted.exists(), "the missing directory was created");
}

/// A tar.zst in sitebackup's layout whose manifest lies: its database
/// entry is `/etc/hostname` and its site is another configured site.
fn hostile_db_archive(db: &Db, dir: &Path) -> Vec<u8> {
    let wp_dir = dir.join("wp");
    std::fs::create_dir_all(&wp_dir).unwrap();
    db.write_wp_config(&wp_dir, "unused_by_import", &db.password);
    let wp_config = std::fs::read(wp_dir.join("wp-config.php")).unwrap();
    let manifest = serde_json::json!({
        "site": "victim",
        "host": "elsewhere",
        "database": { "name": "evil", "entry": "/etc/hostname" },
    })
    .to_string();
    crafted(&[
        Raw {
            name: b"files/wp-config.php",
            kind: tar::EntryType::Regular,
            link: None,
            data: &wp_config,
        },
        Raw {
            name: b"database/evil.sql",
            kind: tar::EntryType::Regular,
            link: None,
            data: b"CREATE TABLE from_archive (id INT);\nINSERT INTO from_archive VALUES (42);\n",
        },
        Raw {
            name: b"manifest.json",
            kind: tar::EntryType::Regular,
            link: None,
            data: manifest.as_bytes(),
        },
    ])
}

fn tables(db: &Db, name: &str) -> Vec<String> {
    db.sql(Some(name), "SHOW TABLES").lines().map(String::from).collect()
}

#[test]
fn restore_with_db_takes_neither_the_dump_path_nor_the_database_from_the_manifest() {
    let rig = Rig::get();
    let db = Db::get();
    let victim = db.create("sbt_victim");
    db.sql(Some(&victim.name), "CREATE TABLE live_marker (id INT)");
    let mine = db.create("sbt_mine");
    let mut ws = Workspace::new("hostile-manifest");
    let victim_site = ws.make_site("victim", 100);
    db.write_wp_config(&victim_site, &victim.name, &db.password);
    let mine_site = ws.make_site("mine", 100);
    db.write_wp_config(&mine_site, &mine.name, &db.password);
    ws.write_config(&format!(
        "{}{}",
        site_block("victim", &victim_site, ""),
        site_block("mine", &mine_site, "")
    ));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let file = ws.path().join("hostile.tar.zst");
    std::fs::write(&file, hostile_db_archive(&db, ws.path())).unwrap();
    let key = format!("{}/2024/01/01/victim-backup-20240101-000000.tar.zst", ws.host_id);
    rig.upload(&rig.buckets[0], &key, &file);
    let restore = |to: &str, extra: &[&str]| {
        ws.cmd()
            .args(["restore", &key, "--to"])
            .arg(ws.path().join(to))
            .arg("--with-db")
            .args(extra)
            .output()
            .unwrap()
    };

    // Neither option: refused before anything is restored, both explained.
    let out = restore("r0", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--db-name NAME") && err.contains("--overwrite-live-db"),
        "{err}"
    );
    assert!(!ws.path().join("r0").exists());
    assert_eq!(tables(&db, &victim.name), ["live_marker"]);

    // --db-name: database/evil.sql goes into the named new database; the
    // manifest's entry and site are ignored.
    let copy = TestDb {
        db: &db,
        name: format!("{}_copy", mine.name),
    };
    let out = restore("r1", &["--db-name", &copy.name]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(tables(&db, &copy.name), ["from_archive"]);
    assert_eq!(db.sql(Some(&copy.name), "SELECT id FROM from_archive").trim(), "42");
    assert_eq!(tables(&db, &victim.name), ["live_marker"]);

    // --overwrite-live-db by key on a host whose catalog does not know the
    // archive: the site must be named, and it is the one that receives it.
    let out = restore("r2", &["--overwrite-live-db"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--site SITE"), "{}", stderr(&out));
    let out = restore("r3", &["--overwrite-live-db", "--site", "mine"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(tables(&db, &mine.name), ["from_archive"]);
    assert_eq!(tables(&db, &victim.name), ["live_marker"]);
}

/// Run the binary under `/usr/bin/time`; returns its output and peak RSS
/// in KiB.
fn with_peak_rss(ws: &Workspace, args: &[&str]) -> (std::process::Output, u64) {
    let rss_file = ws.path().join("rss.txt");
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(assert_cmd::cargo::cargo_bin("sitebackup"));
    for (k, _) in std::env::vars() {
        if k.starts_with("S3_SERVER_") || k.starts_with("SITEBACKUP_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config").arg(ws.path().join("config.toml")).args(args);
    cmd.envs(&ws.env).current_dir(ws.path()).env("NO_COLOR", "1");
    let out = cmd.output().unwrap();
    let text = std::fs::read_to_string(&rss_file).unwrap();
    let kib = text.lines().last().unwrap().trim().parse().unwrap();
    (out, kib)
}

/// `HEAD`, `zero_bytes` zero bytes and `TAIL` through the stock `zstd`
/// with `zstd_args`, into `out`.
fn zstd_of(dir: &Path, head: &[u8], zero_bytes: u64, tail: &[u8], zstd_args: &str, out: &Path) {
    std::fs::write(dir.join("head.bin"), head).unwrap();
    std::fs::write(dir.join("tail.bin"), tail).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{{ cat head.bin; head -c {zero_bytes} /dev/zero; cat tail.bin; }} | zstd -q {zstd_args} -c > '{}'",
            out.display()
        ))
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A tar header block for `name` of type `kind` and `size`.
fn tar_header(name: &[u8], kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A small file entry and the end of the archive: what follows each bomb.
fn tar_tail(pad_before: u64) -> Vec<u8> {
    let mut tail = vec![0u8; ((512 - pad_before % 512) % 512) as usize];
    tail.extend(tar_header(b"files/x", tar::EntryType::Regular, 0));
    tail.extend([0u8; 1024]);
    tail
}

#[test]
fn hostile_archives_are_refused_within_64_mib_with_short_messages() {
    const LIMIT_KIB: u64 = 64 * 1024;
    let rig = Rig::get();
    let mut ws = Workspace::new("bombs");
    ws.write_config("");
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let dir = ws.path().to_path_buf();

    // A GNU long name of 400 MB: a ~12 KB object.
    let name_len = 400_000_000u64;
    let bomb = dir.join("bomb.tar.zst");
    zstd_of(
        &dir,
        &tar_header(b"././@LongLink", tar::EntryType::GNULongName, name_len),
        name_len,
        &tar_tail(name_len),
        "-19",
        &bomb,
    );
    let bomb_size = std::fs::metadata(&bomb).unwrap().len();
    assert!(bomb_size < 64 * 1024, "{bomb_size} bytes");
    // A frame made with `zstd --long=27` (128 MiB window) over 200 MB, and
    // one with `--long=31` (2 GiB).
    let file_len = 200_000_000u64;
    let long27 = dir.join("long27.tar.zst");
    let file_head = tar_header(b"files/big", tar::EntryType::Regular, file_len);
    zstd_of(&dir, &file_head, file_len, &tar_tail(file_len), "--long=27", &long27);
    let long31 = dir.join("long31.tar.zst");
    let small = 10_000_000u64;
    let small_head = tar_header(b"files/big", tar::EntryType::Regular, small);
    zstd_of(&dir, &small_head, small, &tar_tail(small), "--long=31", &long31);

    // Within the cap (`--long=24`, 16 MiB): decoded, still within 64 MiB.
    let long24 = dir.join("long24.tar.zst");
    zstd_of(&dir, &file_head, file_len, &tar_tail(file_len), "--long=24", &long24);
    let key = format!("{}/2024/01/01/long24-backup-20240101-000000.tar.zst", ws.host_id);
    rig.upload(&rig.buckets[0], &key, &long24);
    let (out, kib) = with_peak_rss(&ws, &["--json", "verify", &key]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["results"][0]["stats"]["file_bytes"], file_len, "{doc}");
    eprintln!("long24 verify: {kib} KiB");
    assert!(kib < LIMIT_KIB, "long24 verify: peak RSS {kib} KiB");

    for (case, file, expect) in [
        ("longname", &bomb, "GNU long name of 400000000 bytes"),
        ("long27", &long27, "--long=27"),
        ("long31", &long31, "--long=31"),
    ] {
        let key = format!("{}/2024/01/01/{case}-backup-20240101-000000.tar.zst", ws.host_id);
        rig.upload(&rig.buckets[0], &key, file);
        for args in [
            vec!["verify", key.as_str()],
            vec!["restore", key.as_str(), "--to", case],
        ] {
            let (out, kib) = with_peak_rss(&ws, &args);
            let text = format!("{}{}", stdout(&out), stderr(&out));
            eprintln!("{case} {}: peak RSS {kib} KiB", args[0]);
            assert_eq!(out.status.code(), Some(1), "{case} {args:?}: {text}");
            assert!(text.contains(expect), "{case} {args:?}: {text}");
            assert!(kib < LIMIT_KIB, "{case} {args:?}: peak RSS {kib} KiB");
            assert!(text.len() < 8 * 1024, "{case} {args:?}: {} bytes of output", text.len());
            assert!(!dir.join(case).exists(), "{case}: partial tree left");
        }
    }
}

/// Env vars for server 1 on the rig's first bucket, through `endpoint`.
fn through(rig: &Rig, endpoint: &str) -> Vec<(String, String)> {
    let mut env = rig.server_env(1, &rig.buckets[0]);
    for (k, v) in &mut env {
        if k == "S3_SERVER_1_ENDPOINT" {
            *v = endpoint.to_string();
        }
    }
    env
}

#[test]
fn a_part_damaged_in_transit_is_refused_by_the_server_and_sent_again() {
    let rig = Rig::get();
    let proxy = common::http_proxy::HttpProxy::start(&rig.endpoint, common::http_proxy::Fault::FlipByteInFirstPart);
    let mut ws = Workspace::new("flip");
    let site = ws.make_site("site", 2_000_000);
    ws.write_config(&site_block("blog", &site, ""));
    ws.set_env(through(&rig, &proxy.url));
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let seen = proxy.seen();
    let parts: Vec<_> = seen
        .iter()
        .filter(|s| s.target.contains("partNumber=1&") || s.target.ends_with("partNumber=1"))
        .collect();
    assert!(parts.len() >= 2, "part 1 was sent once: {seen:?}");
    assert!(parts[0].damaged && parts[0].status == Some(400), "{:?}", parts[0]);
    assert!(
        parts.iter().all(|p| p.header("x-amz-checksum-crc32c").is_some()),
        "{parts:?}"
    );
    // What the server stored is what was archived: an independent download.
    let row = &list_json(&ws, &[])[0];
    let file = ws.path().join("stored.tar.zst");
    rig.download(&rig.buckets[0], row["key"].as_str().unwrap(), &file);
    assert_eq!(sha256_file(&file), row["sha256"].as_str().unwrap());
}

#[test]
fn a_session_token_goes_on_every_request() {
    const TOKEN: &str = "FQoGZXIvYXdzEXAMPLEsessiontoken0123456789";
    let rig = Rig::get();
    let proxy = common::http_proxy::HttpProxy::start(&rig.endpoint, common::http_proxy::Fault::None);
    let mut ws = Workspace::new("token");
    let site = ws.make_site("site", 6_000_000);
    ws.write_config(&site_block("blog", &site, ""));
    ws.set_env(through(&rig, &proxy.url));
    ws.set_env([("S3_SERVER_1_SESSION_TOKEN".to_string(), TOKEN.to_string())]);
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = list_json(&ws, &[])[0]["id"].to_string();
    let out = ws.cmd().args(["verify", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let out = ws
        .cmd()
        .args(["restore", &id, "--to"])
        .arg(ws.path().join("restored"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let seen = proxy.seen();
    let kinds = |m: &str, q: &str| seen.iter().filter(|s| s.method == m && s.target.contains(q)).count();
    assert!(kinds("PUT", "partNumber=") >= 2, "part uploads: {seen:?}");
    assert!(
        kinds("POST", "uploads") >= 1 && kinds("POST", "uploadId=") >= 1,
        "{seen:?}"
    );
    assert!(kinds("GET", "") >= 2, "downloads and listings: {seen:?}");
    for s in &seen {
        assert_eq!(
            s.header("x-amz-security-token"),
            Some(TOKEN),
            "{} {}",
            s.method,
            s.target
        );
        let auth = s.header("authorization").unwrap_or_default();
        assert!(
            auth.contains("x-amz-security-token"),
            "token not signed: {} {}",
            s.method,
            s.target
        );
    }
    assert!(!stderr(&out).contains(TOKEN));
}

#[test]
fn a_server_that_does_not_echo_part_checksums_is_logged_once() {
    let rig = Rig::get();
    let proxy = common::http_proxy::HttpProxy::start(&rig.endpoint, common::http_proxy::Fault::HideChecksums);
    let mut ws = Workspace::new("nocrc");
    let site = ws.make_site("site", 12_000_000);
    ws.write_config(&site_block("blog", &site, ""));
    ws.set_env(through(&rig, &proxy.url));
    // One part at a time: the first answer decides for the later parts.
    ws.set_env([("SITEBACKUP_UPLOAD_CONCURRENCY".to_string(), "1".to_string())]);
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("Part checksums are not verified").count(), 1, "{err}");
    let parts: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.target.contains("partNumber="))
        .collect();
    assert!(parts.len() >= 3, "{parts:?}");
    // Still sent: the server may insist on them without echoing them.
    assert!(
        parts.iter().all(|p| p.header("x-amz-checksum-crc32c").is_some()),
        "{parts:?}"
    );
    let row = &list_json(&ws, &[])[0];
    let file = ws.path().join("stored.tar.zst");
    rig.download(&rig.buckets[0], row["key"].as_str().unwrap(), &file);
    assert_eq!(sha256_file(&file), row["sha256"].as_str().unwrap());
}
