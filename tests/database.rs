//! Database dumps and hooks end to end: the real binary against the rig's
//! Garage and MariaDB, checked with `aws`, `zstd`, `tar`, the `mariadb`
//! client and the SQLite catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn site_toml(name: &str, path: &Path, extra: &str) -> String {
    format!("[[sites]]\nname = \"{name}\"\npath = \"{}\"\n{extra}", path.display())
}

/// Run `backup --json SITE`; returns (exit code, report of the site, stderr).
/// `-v`: the log (dump and hook lines are INFO) is part of what is checked.
fn backup(ws: &Workspace, site: &str) -> (i32, serde_json::Value, String) {
    let out = ws.cmd().args(["-v", "--json", "backup", site]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), report["results"][0].clone(), stderr(&out))
}

fn spool_files(ws: &Workspace) -> Vec<String> {
    match std::fs::read_dir(ws.state_dir().join("spool")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Tables of a small WordPress-like database: text with quotes,
/// backslashes and emoji, binary data, and a few hundred generated rows.
const TABLES: &[&str] = &["wp_posts", "wp_options", "wp_postmeta"];

fn fill_wordpress_db(db: &Db, name: &str) {
    db.sql(
        Some(name),
        r#"
        CREATE TABLE wp_posts (
            ID bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
            post_title text NOT NULL,
            post_content longtext NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        INSERT INTO wp_posts (post_title, post_content) VALUES
            ('Hello world!', 'Welcome to WordPress. 😀 This is your first post.'),
            ('Quotes', 'it''s "quoted", a back\\slash; and a semicolon');
        CREATE TABLE wp_options (
            option_id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
            option_name varchar(191) NOT NULL UNIQUE,
            option_value longtext NOT NULL,
            payload longblob
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        INSERT INTO wp_options (option_name, option_value, payload) VALUES
            ('siteurl', 'https://blog.example', 0x00FF10BEEF),
            ('blogname', 'Ünïcödé blog', NULL);
        CREATE TABLE wp_postmeta (
            meta_id bigint unsigned NOT NULL PRIMARY KEY,
            meta_key varchar(255),
            meta_value longtext
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
        INSERT INTO wp_postmeta SELECT seq, CONCAT('key_', seq), REPEAT(CHAR(65 + seq % 26), seq % 50)
            FROM seq_1_to_300;
        "#,
    );
}

#[test]
fn wp_config_site_is_dumped_once_archived_and_imports_back_identically() {
    let rig = Rig::get();
    let db = Db::get();
    let wp = db.create("sbt_wp");
    fill_wordpress_db(&db, &wp.name);

    let mut ws = Workspace::new("db-dump");
    let site = ws.make_site("site", 10_000);
    db.write_wp_config(&site, &wp.name, &db.password);
    ws.write_config(&site_toml("blog", &site, ""));
    // Server 1 is dead: the archive fails over to server 2 and must carry
    // the same dump without dumping again.
    ws.set_env(dead_server(1));
    ws.set_env(rig.server_env(2, &rig.buckets[1]));

    let (code, r, log) = backup(&ws, "blog");
    assert_eq!(code, 0, "{r}\n{log}");
    assert_eq!(r["outcome"], "success", "{r}");
    assert_eq!(r["attempts"][0]["outcome"], "failed", "{r}");
    assert_eq!(r["archive"]["server_id"], 2, "{r}");
    assert_eq!(
        log.matches("Database dump finished.").count(),
        1,
        "the database must be dumped once per run: {log}"
    );
    assert!(spool_files(&ws).is_empty(), "spool left behind: {:?}", spool_files(&ws));

    // Download with aws and read with zstd + tar.
    let key = r["archive"]["key"].as_str().unwrap();
    let file = ws.path().join("download.tar.zst");
    rig.download(&rig.buckets[1], key, &file);
    let entry = format!("database/{}.sql", wp.name);
    let names = tar_listing(&file);
    let pos = |n: &str| names.iter().position(|x| x == n);
    let (sql_at, manifest_at) = (pos(&entry).expect("dump entry"), pos("manifest.json").unwrap());
    assert!(
        names[..sql_at]
            .iter()
            .all(|n| n.starts_with("files") || n.starts_with("database")),
        "{names:?}"
    );
    assert_eq!(manifest_at, names.len() - 1, "{names:?}");
    let dir = ws.path().join("extract");
    extract(&file, &dir);
    let sql = std::fs::read_to_string(dir.join(&entry)).unwrap();
    for table in TABLES {
        assert!(sql.contains(&format!("CREATE TABLE `{table}`")), "{table} missing");
    }
    for needle in [
        "'Hello world!'",
        "😀",
        r#"'it\'s \"quoted\", a back\\slash; and a semicolon'"#,
        "0x00FF10BEEF",
        "'Ünïcödé blog'",
        "(300,'key_300',",
    ] {
        assert!(sql.contains(needle), "{needle} missing from the dump");
    }
    assert!(!sql.contains("not_this_one"));

    // The manifest describes the dump.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let m = &manifest["database"];
    assert_eq!(m["name"], wp.name.as_str(), "{manifest}");
    assert_eq!(m["entry"], entry.as_str());
    assert_eq!(m["dump_bytes"], sql.len() as u64);
    let secs = m["duration_secs"].as_f64().unwrap();
    assert!(secs > 0.0 && secs < 60.0, "{manifest}");
    let version = db.sql(None, "SELECT VERSION()");
    assert_eq!(m["server_version"], version.trim(), "{manifest}");
    assert!(
        m["settings_from"].as_str().unwrap().ends_with("wp-config.php"),
        "{manifest}"
    );

    // Import round trip through the library, with the settings read from
    // the restored wp-config.php, into a database that does not exist yet.
    let copy = format!("{}_copy", wp.name);
    let _copy_guard = TestDb {
        db: &db,
        name: copy.clone(),
    };
    let settings = sitebackup::database::resolve(&dir.join("files"), None)
        .unwrap()
        .unwrap();
    use sitebackup::database::ImportInto;
    let open = || std::fs::File::open(dir.join(&entry)).unwrap();
    let report = sitebackup::database::import_dump(&settings, open(), &ImportInto::New(copy.clone())).unwrap();
    assert!(report.created, "{report:?}");
    assert_eq!(report.database, copy);
    assert_eq!(db.checksums(&copy, TABLES), db.checksums(&wp.name, TABLES));
    assert_eq!(db.sql(Some(&copy), "SELECT COUNT(*) FROM wp_postmeta").trim(), "300");
    // A "new" database that holds tables is refused; as the live database
    // (the settings' own), it is overwritten.
    let err = sitebackup::database::import_dump(&settings, open(), &ImportInto::New(copy.clone())).unwrap_err();
    assert!(err.to_string().contains("already exists and holds tables"), "{err}");
    let mut live = settings.clone();
    live.name = copy.clone();
    let again = sitebackup::database::import_dump(&live, open(), &ImportInto::Live).unwrap();
    assert!(!again.created);
    assert_eq!(db.checksums(&copy, TABLES), db.checksums(&wp.name, TABLES));
}

#[test]
fn wrong_password_fails_without_upload_and_never_shows_the_password() {
    const PASSWORD: &str = "Wr0ng-Pa55-zq7xv";
    let rig = Rig::get();
    let db = Db::get();
    let wp = db.create("sbt_badpw");
    let mut ws = Workspace::new("db-badpw");
    let site = ws.make_site("site", 1000);
    db.write_wp_config(&site, &wp.name, PASSWORD);
    ws.write_config(&site_toml("blog", &site, ""));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));

    for args in [vec!["backup", "blog"], vec!["--json", "backup", "blog"]] {
        let out = ws.cmd().args(&args).output().unwrap();
        let (o, e) = (stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{o}\n{e}");
        assert!(o.contains("Access denied"), "the error must say why: {o}");
        assert!(o.contains("database dump"), "{o}");
        assert!(
            !o.contains(PASSWORD) && !e.contains(PASSWORD),
            "password leaked:\n{o}\n{e}"
        );
    }

    let prefix = format!("{}/", ws.host_id);
    assert!(
        rig.data_keys(&rig.buckets[0], &prefix).is_empty(),
        "an object was uploaded"
    );
    assert!(rig.pending_uploads(&rig.buckets[0], &prefix).is_empty());
    assert!(list_json(&ws, &["--all"]).is_empty(), "no archive row may be written");
    assert!(spool_files(&ws).is_empty(), "{:?}", spool_files(&ws));

    // The runs table says why, and no text anywhere in the catalog holds
    // the password.
    let conn = rusqlite::Connection::open(ws.state_dir().join("catalog.db")).unwrap();
    let errors: Vec<(String, Option<String>)> = conn
        .prepare("SELECT outcome, error FROM backup_runs")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for (outcome, error) in &errors {
        assert_eq!(outcome, "failed");
        assert!(error.as_deref().unwrap_or("").contains("Access denied"), "{errors:?}");
    }
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in ["backup_runs", "run_attempts", "s3_archives"] {
        assert!(tables.iter().any(|x| x == t), "{t} missing: {tables:?}");
    }
    for table in &tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let cols = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..cols {
                let text = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                    _ => continue,
                };
                assert!(!text.contains(PASSWORD), "password in {table}: {text}");
            }
        }
    }
}

#[test]
fn section_settings_with_socket_and_password_file_handle_a_tricky_password() {
    let rig = Rig::get();
    let db = Db::get();
    let data = db.create("sbt_sock");
    db.sql(
        Some(&data.name),
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(20)) DEFAULT CHARSET=utf8mb4; INSERT INTO t VALUES (1, 'via-socket');",
    );
    // A user whose password needs quoting in an option file.
    let user = format!("sbq{}", std::process::id());
    let password = r#"p#a"s's \w0rd;x "#;
    db.sql(
        None,
        &format!(
            "DROP USER IF EXISTS '{user}'@'localhost'; CREATE USER '{user}'@'localhost' IDENTIFIED BY '{}'; \
             GRANT ALL ON `{}`.* TO '{user}'@'localhost';",
            password.replace('\\', "\\\\").replace('\'', "''"),
            data.name
        ),
    );
    let mut ws = Workspace::new("db-socket");
    let site = ws.make_site("site", 1000);
    // A wp-config.php that would not work: the section is complete, so it
    // must not be read.
    std::fs::write(site.join("wp-config.php"), "<?php define('DB_NAME', getenv('NOPE'));").unwrap();
    let pw_file = ws.path().join("db.pw");
    std::fs::write(&pw_file, format!("{password}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let section = format!(
        "[sites.database]\nname = \"{}\"\nuser = \"{user}\"\npassword_file = \"{}\"\nsocket = \"{}\"\n",
        data.name,
        pw_file.display(),
        db.socket.display()
    );
    ws.write_config(&site_toml("blog", &site, &section));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));

    let (code, r, log) = backup(&ws, "blog");
    let cleanup = db.try_sql(None, &format!("DROP USER IF EXISTS '{user}'@'localhost'"));
    assert_eq!(code, 0, "{r}\n{log}");
    assert!(cleanup.status.success());
    assert!(!log.contains(password.trim()), "{log}");
    let file = ws.path().join("a.tar.zst");
    rig.download(&rig.buckets[0], r["archive"]["key"].as_str().unwrap(), &file);
    let dir = ws.path().join("x");
    extract(&file, &dir);
    let sql = std::fs::read_to_string(dir.join(format!("database/{}.sql", data.name))).unwrap();
    assert!(sql.contains("(1,'via-socket')"), "{sql}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["database"]["settings_from"], "[sites.database]");

    // A world-readable password file is refused up front.
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ws.cmd().args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("world-readable"), "{}", stderr(&out));
}

#[test]
fn enabled_false_skips_the_database_even_with_wp_config() {
    let rig = Rig::get();
    let db = Db::get();
    let mut ws = Workspace::new("db-off");
    let site = ws.make_site("site", 1000);
    // Points at a database that does not exist: dumping it would fail.
    db.write_wp_config(&site, "sbt_does_not_exist", &db.password);
    ws.write_config(&site_toml("blog", &site, "[sites.database]\nenabled = false\n"));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let (code, r, log) = backup(&ws, "blog");
    assert_eq!(code, 0, "{r}\n{log}");
    let file = ws.path().join("a.tar.zst");
    rig.download(&rig.buckets[0], r["archive"]["key"].as_str().unwrap(), &file);
    let names = tar_listing(&file);
    assert!(!names.iter().any(|n| n.starts_with("database")), "{names:?}");
    assert!(names.iter().any(|n| n == "files/wp-config.php"));
}

#[test]
fn before_hook_runs_before_the_archive_and_after_hook_sees_the_key() {
    let rig = Rig::get();
    let mut ws = Workspace::new("hooks-ok");
    let site = ws.make_site("site", 1000);
    let after_file = ws.path().join("after.txt");
    let on_error_file = ws.path().join("on_error.txt");
    let hooks = format!(
        "[sites.hooks]\n\
         before = ['echo \"$SITEBACKUP_HOOK $SITEBACKUP_OUTCOME $SITEBACKUP_SITE\" > \"$SITEBACKUP_SITE_PATH/hook-marker.txt\"', 'echo hello-from-the-hook']\n\
         after = ['printf \"%s %s\" \"$SITEBACKUP_OUTCOME\" \"$SITEBACKUP_ARCHIVE_KEY\" > {}']\n\
         on_error = ['touch {}']\n",
        after_file.display(),
        on_error_file.display()
    );
    ws.write_config(&site_toml("blog", &site, &hooks));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));

    let (code, r, log) = backup(&ws, "blog");
    assert_eq!(code, 0, "{r}\n{log}");
    assert_eq!(r["outcome"], "success", "{r}");
    assert!(
        log.contains("hello-from-the-hook"),
        "hook output goes to the log: {log}"
    );

    // The marker written by `before` is inside the archive.
    let key = r["archive"]["key"].as_str().unwrap();
    let file = ws.path().join("a.tar.zst");
    rig.download(&rig.buckets[0], key, &file);
    let dir = ws.path().join("x");
    extract(&file, &dir);
    assert_eq!(
        std::fs::read_to_string(dir.join("files/hook-marker.txt")).unwrap(),
        "before running blog\n"
    );

    // `after` saw the key that the catalog holds.
    let rows = list_json(&ws, &[]);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        std::fs::read_to_string(&after_file).unwrap(),
        format!("success {}", rows[0]["key"].as_str().unwrap())
    );
    assert!(!on_error_file.exists(), "on_error ran after a success");
}

#[test]
fn failing_before_hook_aborts_unless_optional() {
    let rig = Rig::get();
    let mut ws = Workspace::new("hooks-fail");
    let site = ws.make_site("site", 1000);
    let on_error_file = ws.path().join("on_error.txt");
    let hooks = |optional: bool| {
        format!(
            "[sites.hooks]\nbefore = ['exit 3']\nbefore_optional = {optional}\n\
             on_error = ['printf \"%s|%s\" \"$SITEBACKUP_OUTCOME\" \"$SITEBACKUP_ERROR\" > {}']\n",
            on_error_file.display()
        )
    };
    ws.write_config(&site_toml("blog", &site, &hooks(false)));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));

    let (code, r, log) = backup(&ws, "blog");
    assert_eq!(code, 1, "{r}\n{log}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("before hook #1 (exit) failed: exit status: 3"),
        "{error}"
    );
    assert!(
        r["attempts"].as_array().unwrap().is_empty(),
        "no server may be tried: {r}"
    );
    let prefix = format!("{}/", ws.host_id);
    assert!(rig.data_keys(&rig.buckets[0], &prefix).is_empty());
    assert!(list_json(&ws, &["--all"]).is_empty());
    let seen = std::fs::read_to_string(&on_error_file).unwrap();
    assert_eq!(seen, format!("failed|{error}"));

    // Marked optional, the same failure only warns.
    ws.write_config(&site_toml("blog", &site, &hooks(true)));
    let (code, r, log) = backup(&ws, "blog");
    assert_eq!(code, 3, "stored with a warning: {r}\n{log}");
    assert_eq!(r["outcome"], "warning", "{r}");
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .contains("before hook #1 (exit) failed"),
        "{r}"
    );
    assert_eq!(
        rig.data_keys(&rig.buckets[0], &prefix).len(),
        2,
        "archive + checksum file"
    );
}

#[test]
fn hanging_hook_is_killed_at_its_timeout() {
    let rig = Rig::get();
    let mut ws = Workspace::new("hooks-hang");
    let site = ws.make_site("site", 1000);
    ws.write_config(&site_toml(
        "blog",
        &site,
        "[sites.hooks]\nbefore = ['sleep 600']\ntimeout_secs = 1\n",
    ));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let started = Instant::now();
    let (code, r, log) = backup(&ws, "blog");
    let took = started.elapsed();
    assert_eq!(code, 1, "{r}\n{log}");
    // The 1 s limit, the stop of its process group and the binary's own
    // start: seconds, not the minutes the hook would sleep.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "the run took {took:?}"
    );
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("before hook #1 (sleep) timed out after 1 s"), "{error}");
    let prefix = format!("{}/", ws.host_id);
    assert!(rig.data_keys(&rig.buckets[0], &prefix).is_empty());
}

#[test]
fn restore_with_db_into_a_named_copy_gives_equal_checksums() {
    let rig = Rig::get();
    let db = Db::get();
    let wp = db.create("sbt_rst");
    fill_wordpress_db(&db, &wp.name);
    let mut ws = Workspace::new("db-restore");
    let site = ws.make_site("site", 1000);
    db.write_wp_config(&site, &wp.name, &db.password);
    ws.write_config(&site_toml("blog", &site, ""));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let (code, r, log) = backup(&ws, "blog");
    assert_eq!(code, 0, "{r}\n{log}");
    let id = list_json(&ws, &[])[0]["id"].as_i64().unwrap().to_string();

    let copy = format!("{}_copy", wp.name);
    let _copy_guard = TestDb {
        db: &db,
        name: copy.clone(),
    };
    let target = ws.path().join("restored");
    let out = ws
        .cmd()
        .args(["--json", "restore", &id, "--to"])
        .arg(&target)
        .args(["--with-db", "--db-name", &copy])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["database_import"]["database"], copy.as_str(), "{doc}");
    assert_eq!(doc["database_import"]["created"], true, "{doc}");
    assert_eq!(db.checksums(&copy, TABLES), db.checksums(&wp.name, TABLES));
    assert!(!stdout(&out).contains(&db.password) && !stderr(&out).contains(&db.password));
}

/// A directory holding a fake `mariadb-dump` that hangs (writing its pid
/// and the pid of the `sleep` it started), to put first on PATH.
fn hanging_dump_tool(ws: &Workspace, marker: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = ws.path().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let tool = bin.join("mariadb-dump");
    std::fs::write(
        &tool,
        format!(
            "#!/bin/sh\necho $$ > {dir}/dump.pid\nsleep 600 & echo $! > {dir}/sleep.pid\nwait\n# {marker}\n",
            dir = ws.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// The process runs (a zombie waiting to be reaped does not count).
fn alive(pid_file: &Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn client_dirs(ws: &Workspace) -> Vec<String> {
    spool_files(ws)
        .into_iter()
        .filter(|f| f.starts_with(".client-"))
        .collect()
}

/// A dump that hangs is stopped at `database.timeout_secs`, with its whole
/// process group, and the run fails naming the limit; nothing is uploaded
/// and no option file (it holds the password) is left. (Before: no limit;
/// the run waited for the dump forever, blocking every other backup.)
#[test]
fn a_hanging_dump_is_killed_at_its_timeout() {
    let rig = Rig::get();
    let mut ws = Workspace::new("dump-hang");
    let site = ws.make_site("site", 1000);
    let bin = hanging_dump_tool(&ws, "dump-hang");
    ws.write_config(&site_toml(
        "blog",
        &site,
        "[sites.database]\nname = \"wp\"\nuser = \"u\"\npassword = \"pw-dump-hang\"\nhost = \"127.0.0.1\"\ntimeout_secs = 2\n",
    ));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([(
        "PATH".to_string(),
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    )]);
    let started = Instant::now();
    let (code, r, log) = backup(&ws, "blog");
    let took = started.elapsed();
    assert_eq!(code, 1, "{r}\n{log}");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("ran longer than 2 s"), "{error}");
    assert!(error.contains("timeout_secs"), "{error}");
    // The 2 s limit plus at most the 3 s grace before SIGKILL, and a little.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "the run took {took:?}"
    );
    assert!(!alive(&ws.path().join("dump.pid")), "the dump tool still runs");
    assert!(
        !alive(&ws.path().join("sleep.pid")),
        "a child of the dump tool still runs"
    );
    assert!(client_dirs(&ws).is_empty(), "{:?}", spool_files(&ws));
    let prefix = format!("{}/", ws.host_id);
    assert!(rig.data_keys(&rig.buckets[0], &prefix).is_empty());
}

/// SIGKILL during a dump leaves the private option file (with the database
/// password): it lives under `state_dir`, not the shared temp dir, and the
/// next daemon start removes it. (Before: it stayed in /tmp for good.)
#[test]
fn a_killed_dump_leaves_no_password_file_after_the_next_start() {
    let rig = Rig::get();
    let mut ws = Workspace::new("dump-kill");
    let site = ws.make_site("site", 1000);
    let bin = hanging_dump_tool(&ws, "dump-kill");
    ws.write_config(&format!(
        "[daemon]\ncatch_up = false\n\n{}",
        site_toml(
            "blog",
            &site,
            "schedule = \"0 0 3 * * *\"\n[sites.database]\nname = \"wp\"\nuser = \"u\"\npassword = \"pw-dump-kill\"\nhost = \"127.0.0.1\"\n",
        )
    ));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([(
        "PATH".to_string(),
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    )]);
    let mut child = ws.spawn_cmd().args(["backup", "blog"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client_dirs(&ws).is_empty() || !ws.path().join("sleep.pid").exists() {
        assert!(
            Instant::now() < deadline,
            "the dump never started: {:?}",
            spool_files(&ws)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let left = client_dirs(&ws);
    assert_eq!(left.len(), 1, "{left:?}");
    let option_file = ws.state_dir().join("spool").join(&left[0]).join("client.cnf");
    assert!(std::fs::read_to_string(&option_file).unwrap().contains("pw-dump-kill"));
    // The orphaned dump tool is still running in its own group: stop it.
    for pid_file in ["dump.pid", "sleep.pid"] {
        let pid = std::fs::read_to_string(ws.path().join(pid_file)).unwrap();
        let _ = std::process::Command::new("kill").args(["-9", pid.trim()]).status();
    }

    let mut daemon = ws.spawn_cmd().args(["daemon"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client_dirs(&ws).is_empty() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            panic!("the option file is still there: {:?}", spool_files(&ws));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!option_file.exists());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    daemon.wait().unwrap();
}

/// Hooks never see storage credentials: a `before` and an `after` hook
/// that dump their environment (`env`) find no `S3_SERVER_*` variable and
/// none of the secret values, whether they came from the process
/// environment or from the dotenv file. (Holds for a hook environment
/// built by removing variables or by allowing a few.)
#[test]
fn hooks_get_no_storage_credentials_in_their_environment() {
    let rig = Rig::get();
    let mut ws = Workspace::new("hook-env");
    let site = ws.make_site("site", 1000);
    let (before, after) = (ws.path().join("before.env"), ws.path().join("after.env"));
    ws.write_config(&site_toml(
        "blog",
        &site,
        &format!(
            "[sites.hooks]\nbefore = ['env > {}']\nafter = ['env > {}']\n",
            before.display(),
            after.display()
        ),
    ));
    // Server 1 from the process environment, server 2 from the env file
    // (named: a `./.env` is never read implicitly).
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let file_secret = "dotenv-secret-9f8e7d6c5b4a";
    let file_access = "GKdotenvaccesskey0123456789";
    std::fs::write(
        ws.path().join(".env"),
        format!(
            "S3_SERVER_2_ENDPOINT=http://127.0.0.1:1\nS3_SERVER_2_REGION=garage\n\
             S3_SERVER_2_ACCESS_KEY={file_access}\nS3_SERVER_2_SECRET_KEY={file_secret}\n\
             S3_SERVER_2_BUCKET=nowhere\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ws.path().join(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = ws.cmd().args(["--env-file", ".env", "servers"]).output().unwrap();
    assert!(
        stdout(&out).contains("Configured S3 servers: 2"),
        "the dotenv file is read: {}",
        stdout(&out)
    );

    let out = ws
        .cmd()
        .args(["--env-file", ".env", "--json", "backup", "blog"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (code, r, log) = (out.status.code().unwrap(), report["results"][0].clone(), stderr(&out));
    assert_eq!(code, 0, "{r}\n{log}");
    assert_eq!(r["outcome"], "success", "{r}");
    for (file, stage) in [(&before, "before"), (&after, "after")] {
        let env = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{stage} hook wrote nothing: {e}"));
        // It is the hook's environment …
        assert!(env.lines().any(|l| l == "SITEBACKUP_SITE=blog"), "{stage}: {env}");
        assert!(
            env.lines().any(|l| l == format!("SITEBACKUP_HOOK={stage}")),
            "{stage}: {env}"
        );
        // … without the storage credentials.
        let leaked: Vec<&str> = env
            .lines()
            .filter(|l| l.starts_with("S3_SERVER_"))
            .map(|l| l.split('=').next().unwrap_or_default())
            .collect();
        assert!(leaked.is_empty(), "{stage} hook sees {leaked:?}");
        for (what, secret) in [
            ("the S3 secret key", rig.secret_key.as_str()),
            ("the S3 access key", rig.access_key.as_str()),
            ("the dotenv secret key", file_secret),
            ("the dotenv access key", file_access),
        ] {
            let names: Vec<&str> = env
                .lines()
                .filter(|l| l.contains(secret))
                .map(|l| l.split('=').next().unwrap_or_default())
                .collect();
            assert!(names.is_empty(), "{stage} hook sees {what} in {names:?}");
        }
    }
}
