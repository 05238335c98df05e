//! What restic and borgmatic users reach for, through the real binary
//! against Garage and the `local` server type: `.gitignore`-style excludes
//! (`exclude`, `exclude_file`, `.sitebackupignore`, checked against
//! `git check-ignore`), `ls`, `restore --include`, `backup --dry-run` and
//! `completions`. Archives are cross-checked with `aws`, `zstd` and `tar`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// A site whose names exercise the exclude rules below.
fn make_exclude_site(parent: &Path) -> PathBuf {
    let root = parent.join("site");
    for (rel, size) in [
        ("index.php", 100),
        ("wp-content/cache/page.html", 3000),
        ("wp-content/cache/sub/deep.html", 2000),
        ("wp-content/plugins/x/cache/y.txt", 10),
        ("cache/top.html", 500),
        ("debug.log", 40),
        ("logs/error.log", 60),
        ("logs/keep.log", 70),
        ("wp-content/uploads/2024/a.jpg", 5000),
        ("secret.txt", 5),
    ] {
        write(&root, rel, &random(size));
    }
    root
}

/// The three rule sources of one site, in precedence order (lowest first):
/// the site's `.sitebackupignore`, the `exclude_file`, `exclude`.
const SITE_FILE: &str = "uploads/\n!debug.log\n";
const EXCLUDE_FILE: &str = "# operator's list\n*.log\nsecret.txt\n";
const EXCLUDE: [&str; 3] = ["wp-content/cache/", "/cache", "!keep.log"];

/// Every path under `root` (relative; directories too).
fn all_paths(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The paths git keeps with `rules` as its exclude file (a git directory
/// outside the site, so the site is not touched).
fn git_kept(root: &Path, rules: &str) -> BTreeSet<String> {
    let git_dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("--git-dir")
            .arg(git_dir.path())
            .arg("--work-tree")
            .arg(root)
            .current_dir(root)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    assert!(git(&["init", "-q"]).wait().unwrap().success(), "git init");
    std::fs::write(git_dir.path().join("info/exclude"), rules).unwrap();
    let all = all_paths(root);
    let mut child = git(&["check-ignore", "--no-index", "--stdin", "-z"]);
    let input: Vec<u8> = all.iter().flat_map(|p| p.bytes().chain([0])).collect();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "git check-ignore: {out:?}");
    let ignored: BTreeSet<String> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    all.difference(&ignored).cloned().collect()
}

/// `files/…` names of an archive, per `zstd -dc | tar -t`, without the
/// prefix and trailing slashes.
fn archived_files(archive: &Path) -> BTreeSet<String> {
    tar_listing(archive)
        .iter()
        .filter_map(|n| n.strip_prefix("files/"))
        .map(|n| n.trim_end_matches('/').to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

fn site_toml(path: &Path, extra: &str) -> String {
    format!("[[sites]]\nname = \"blog\"\npath = \"{}\"\n{extra}", path.display())
}

#[test]
fn excludes_from_config_exclude_file_and_site_file_match_git() {
    let rig = Rig::get();
    let mut ws = Workspace::new("excludes");
    let site = make_exclude_site(ws.path());
    std::fs::write(site.join(".sitebackupignore"), SITE_FILE).unwrap();
    let exclude_file = ws.path().join("blog.exclude");
    std::fs::write(&exclude_file, EXCLUDE_FILE).unwrap();
    let exclude_toml: Vec<String> = EXCLUDE.iter().map(|p| format!("{p:?}")).collect();
    ws.write_config(&site_toml(
        &site,
        &format!(
            "exclude = [{}]\nexclude_file = \"{}\"\n",
            exclude_toml.join(", "),
            exclude_file.display()
        ),
    ));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));

    // The dry run tells what each rule leaves out.
    let out = ws
        .cmd()
        .args(["--json", "backup", "--dry-run", "blog"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let plan = &json_of(&out)["sites"][0];
    let by: BTreeSet<(String, String, u64)> = plan["source"]["excluded_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pattern"].as_str().unwrap().to_string(),
                r["source"].as_str().unwrap().to_string(),
                r["files"].as_u64().unwrap(),
            )
        })
        .collect();
    let site_file = site.join(".sitebackupignore").display().to_string();
    let ex_file = exclude_file.display().to_string();
    let expected: BTreeSet<(String, String, u64)> = [
        ("uploads/", site_file.as_str(), 1),
        ("*.log", ex_file.as_str(), 2),
        ("secret.txt", ex_file.as_str(), 1),
        ("wp-content/cache/", "exclude", 2),
        ("/cache", "exclude", 1),
    ]
    .into_iter()
    .map(|(p, s, n)| (p.to_string(), s.to_string(), n))
    .collect();
    assert_eq!(by, expected, "{plan}");

    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let key = json_of(&out)["results"][0]["archive"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let file = ws.path().join("archive.tar.zst");
    rig.download(&rig.buckets[0], &key, &file);
    let ours = archived_files(&file);

    // git, with the three sources as one exclude file in the same order.
    let git = git_kept(&site, &format!("{SITE_FILE}{EXCLUDE_FILE}{}\n", EXCLUDE.join("\n")));
    assert_eq!(ours, git);
    for kept in [
        "index.php",
        "wp-content/plugins/x/cache/y.txt",
        "logs/keep.log",
        ".sitebackupignore",
    ] {
        assert!(ours.contains(kept), "{kept} missing: {ours:?}");
    }
    for gone in [
        "debug.log",
        "wp-content/uploads",
        "cache",
        "wp-content/cache",
        "secret.txt",
    ] {
        assert!(!ours.contains(gone), "{gone} archived: {ours:?}");
    }
    assert_eq!(
        plan["source"]["files"].as_u64().unwrap(),
        ours.iter().filter(|p| site.join(p).is_file()).count() as u64,
        "the dry run counted the files the backup stored"
    );
}

#[test]
fn a_site_file_is_not_followed_out_of_the_site_and_exclude_file_problems_are_config_errors() {
    let ws = Workspace::new("exclude-guards");
    let site = make_exclude_site(ws.path());
    let target = ws.path().join("backups");
    std::fs::create_dir(&target).unwrap();
    let local = format!(
        "[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n\n",
        target.display()
    );
    // The web user links the ignore file to a file outside the site that
    // would exclude everything.
    let outside = ws.path().join("outside-rules");
    std::fs::write(&outside, "*\n").unwrap();
    std::os::unix::fs::symlink(&outside, site.join(".sitebackupignore")).unwrap();
    ws.write_config(&format!("{local}{}", site_toml(&site, "")));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    let report = json_of(&out);
    let result = &report["results"][0];
    let key = result["archive"]["key"].as_str().unwrap_or_else(|| panic!("{report}"));
    let warnings = result["warnings"].to_string();
    assert!(
        warnings.contains(".sitebackupignore: it is a symlink, which is not followed"),
        "{warnings}"
    );
    let files = archived_files(&target.join(key));
    assert!(files.contains("index.php") && files.contains("secret.txt"), "{files:?}");

    // A missing, a relative and a bad exclude_file, and a bad pattern:
    // configuration errors (exit 2) naming the key.
    let missing = ws.path().join("nope.exclude");
    let bad = ws.path().join("bad.exclude");
    std::fs::write(&bad, "ok\nwp-content/{cache\n").unwrap();
    for (extra, wanted) in [
        (
            format!("exclude_file = \"{}\"\n", missing.display()),
            missing.display().to_string(),
        ),
        (
            "exclude_file = \"relative.exclude\"\n".to_string(),
            "must be absolute".to_string(),
        ),
        (format!("exclude_file = \"{}\"\n", bad.display()), "line 2".to_string()),
        (
            "exclude = [\"a{b\"]\n".to_string(),
            "unclosed alternate group".to_string(),
        ),
    ] {
        ws.write_config(&format!("{local}{}", site_toml(&site, &extra)));
        let out = ws.cmd().args(["config", "check"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra}: {}", stdout(&out));
        let err = stderr(&out);
        let key = if extra.starts_with("exclude =") {
            ".exclude"
        } else {
            ".exclude_file"
        };
        assert!(
            err.contains("blog") && err.contains(key) && err.contains(&wanted),
            "{extra}: {err}"
        );
        let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra}");
    }
}

/// One rich site backed up to Garage's first bucket.
struct BackedUp {
    rig: Rig,
    ws: Workspace,
    site: PathBuf,
    id: i64,
    key: String,
    sha256: String,
}

fn backed_up(name: &str) -> BackedUp {
    let rig = Rig::get();
    let mut ws = Workspace::new(name);
    // Incompressible content: a flipped byte still decodes, so only the
    // checksum can catch it.
    let site = make_rich_site(ws.path(), "site", 400_000);
    ws.write_config(&site_toml(&site, ""));
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let a = json_of(&out)["results"][0]["archive"].clone();
    BackedUp {
        id: a["id"].as_i64().unwrap(),
        key: a["key"].as_str().unwrap().to_string(),
        sha256: a["sha256"].as_str().unwrap().to_string(),
        rig,
        ws,
        site,
    }
}

impl BackedUp {
    /// Replace the stored object with a copy with one flipped byte.
    fn corrupt(&self) {
        let file = self.ws.path().join("object.tar.zst");
        self.rig.download(&self.rig.buckets[0], &self.key, &file);
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&file, &bytes).unwrap();
        self.rig.upload(&self.rig.buckets[0], &self.key, &file);
        assert_ne!(sha256_file(&file), self.sha256);
    }
}

/// `tar -tv --numeric-owner` in UTC, whitespace collapsed, ASCII lines only
/// (tar and `ls` escape other bytes differently).
fn tar_tv(archive: &Path) -> Vec<String> {
    let out = pipeline(&format!(
        "zstd -dc '{}' | TZ=UTC tar -tv --numeric-owner -f -",
        archive.display()
    ))
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    normalized(&stdout(&out))
}

fn normalized(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|l| l.replace("/ ->", " ->").trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn ls_streams_the_archive_and_reads_like_tar_tv() {
    let b = backed_up("ls");
    let file = b.ws.path().join("stock.tar.zst");
    b.rig.download(&b.rig.buckets[0], &b.key, &file);
    let theirs = tar_tv(&file);

    let out = b.ws.cmd().args(["ls", &b.id.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = normalized(&stdout(&out));
    assert_eq!(ours.len(), theirs.len(), "{ours:#?}\n{theirs:#?}");
    let ascii = |v: &[String]| -> Vec<String> { v.iter().filter(|l| !l.contains("caf")).cloned().collect() };
    assert_eq!(ascii(&ours), ascii(&theirs));
    assert!(
        ours.iter()
            .any(|l| l.ends_with("files/latest.bin -> wp-content/uploads/2024/12/photo.bin"))
    );
    assert!(
        !b.ws.path().join("files").exists() && entries_of(b.ws.path()).iter().all(|n| !n.starts_with(".sitebackup")),
        "nothing extracted"
    );

    // A path prefix, by key, as JSON, on a fresh host with an empty catalog.
    let mut fresh = Workspace::new("ls-fresh");
    fresh.host_id = b.ws.host_id.clone();
    fresh.write_config("");
    fresh.set_env(b.rig.server_env(1, &b.rig.buckets[0]));
    let out = fresh
        .cmd()
        .args(["--json", "ls", &b.key, "files/wp-content/uploads/"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["sha256"], b.sha256.as_str(), "{v}");
    assert_eq!(v["checked_against"][0]["source"], "sidecar", "{v}");
    let entries = v["entries"].as_array().unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "files/wp-content/uploads/",
            "files/wp-content/uploads/2024/",
            "files/wp-content/uploads/2024/12/",
            "files/wp-content/uploads/2024/12/photo.bin",
            "files/wp-content/uploads/empty.txt"
        ]
    );
    let photo = &entries[3];
    assert_eq!(photo["size"], 400_000);
    assert_eq!(photo["type"], "file");
    let meta = std::fs::metadata(b.site.join("wp-content/uploads/2024/12/photo.bin")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(photo["mode"].as_u64().unwrap(), u64::from(meta.mode() & 0o7777));
    assert_eq!(
        photo["mtime"],
        chrono::DateTime::from_timestamp(meta.mtime(), 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    // A path that is not there is an error, not an empty listing.
    let out =
        b.ws.cmd()
            .args(["ls", &b.id.to_string(), "wp-config.php"])
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing in") && stderr(&out).contains("files/wp-config.php"),
        "{}",
        stderr(&out)
    );

    // A damaged archive: the listing ends in an error.
    b.corrupt();
    let out = b.ws.cmd().args(["ls", &b.id.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("checksum mismatch"), "{}", stderr(&out));
}

#[test]
fn ls_and_restore_include_on_a_local_server() {
    let ws = Workspace::new("ls-local");
    let site = make_rich_site(ws.path(), "site", 50_000);
    let target = ws.path().join("backups");
    std::fs::create_dir(&target).unwrap();
    ws.write_config(&format!(
        "[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n\n{}",
        target.display(),
        site_toml(&site, "")
    ));
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let key = json_of(&out)["results"][0]["archive"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ws.cmd().args(["ls", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(normalized(&stdout(&out)).len(), tar_tv(&target.join(&key)).len());

    let dir = ws.path().join("partial");
    let out = ws
        .cmd()
        .args(["restore", "1", "--include", "files/index.php", "--to"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries_of(&dir.join("files")), ["index.php"]);
}

#[test]
fn restore_include_takes_one_file_and_one_directory_and_still_checks_the_whole_archive() {
    let b = backed_up("include");
    let dir = b.ws.path().join("partial");
    let out =
        b.ws.cmd()
            .args(["--json", "restore", &b.id.to_string(), "--to"])
            .arg(&dir)
            .args(["--include", "files/wp-settings.php", "files/wp-content/uploads"])
            .output()
            .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["sha256"], b.sha256.as_str(), "the whole object was hashed");
    assert_eq!(v["size_bytes"], list_json(&b.ws, &[])[0]["size_bytes"], "{v}");
    assert!(v["stats"]["skipped"].as_u64().unwrap() >= 4, "{v}");
    assert_eq!(entries_of(&dir), ["files", "manifest.json"]);
    assert_eq!(entries_of(&dir.join("files")), ["wp-content", "wp-settings.php"]);
    assert_eq!(entries_of(&dir.join("files/wp-content")), ["uploads"]);
    assert_same_tree(
        &b.site.join("wp-content/uploads"),
        &dir.join("files/wp-content/uploads"),
    );
    assert_eq!(
        std::fs::read(dir.join("files/wp-settings.php")).unwrap(),
        std::fs::read(b.site.join("wp-settings.php")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("files/wp-content"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750, "the directory on the way has its archived mode");

    // A path that is not in the archive fails the restore.
    let none = b.ws.path().join("none");
    let out =
        b.ws.cmd()
            .args(["restore", &b.id.to_string(), "--include", "wp-config.php", "--to"])
            .arg(&none)
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing in the archive at wp-config.php"),
        "{}",
        stderr(&out)
    );
    assert!(!none.exists());

    // A damaged archive fails a partial restore too, even though the
    // included entries come before the damage, and leaves nothing.
    b.corrupt();
    let bad = b.ws.path().join("bad");
    let out =
        b.ws.cmd()
            .args([
                "--json",
                "restore",
                &b.id.to_string(),
                "--include",
                "files/index.php",
                "--to",
            ])
            .arg(&bad)
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v = json_of(&out);
    assert!(v["error"].as_str().unwrap().contains("checksum mismatch"), "{v}");
    assert!(v.get("sha256").is_none(), "no success report: {v}");
    assert!(!bad.exists(), "nothing restored");
}

/// Row counts of the catalog's tables, read with rusqlite.
fn catalog_counts(state: &Path) -> Vec<(String, i64)> {
    let db = rusqlite::Connection::open(state.join("catalog.db")).unwrap();
    ["s3_archives", "backup_runs", "run_attempts"]
        .iter()
        .map(|t| {
            let n: i64 = db
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .unwrap();
            (t.to_string(), n)
        })
        .collect()
}

#[test]
fn backup_dry_run_explains_the_choice_and_writes_nothing() {
    let rig = Rig::get();
    let mut ws = Workspace::new("dry-run");
    let site = ws.make_site("site", 200_000);
    std::fs::write(
        site.join("wp-config.php"),
        "<?php\ndefine('DB_NAME', 'wp_dry');\ndefine('DB_USER', 'u');\ndefine('DB_PASSWORD', 'pw-not-shown');\ndefine('DB_HOST', '127.0.0.1:1');\n",
    )
    .unwrap();
    let hook_mark = ws.path().join("hook-ran");
    let local = ws.path().join("local-target");
    std::fs::create_dir(&local).unwrap();
    ws.write_config(&format!(
        "[[servers]]\nid = 4\ntype = \"local\"\npath = \"{}\"\n\n{}",
        local.display(),
        site_toml(
            &site,
            &format!(
                "exclude = [\"wp-content/cache/\"]\n[sites.hooks]\nbefore = [\"touch {}\"]\n",
                hook_mark.display()
            )
        )
    ));
    // Server 1 has no room, server 2 does not answer, server 3 takes it.
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_STORAGE_LIMIT_GB".to_string(), "0.00001".to_string())]);
    ws.set_env(dead_server(2));
    ws.set_env(rig.server_env(3, &rig.buckets[1]));
    let prefix = format!("{}/", ws.host_id);
    let buckets_before: Vec<_> = rig.buckets[..2].iter().map(|b| rig.keys(b, &prefix)).collect();

    let dry_run = |ws: &Workspace| {
        let out = ws
            .cmd()
            .args(["--json", "backup", "--dry-run", "blog"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        let v = json_of(&out);
        let human = ws.cmd().args(["backup", "--dry-run", "--all"]).output().unwrap();
        assert!(human.status.success(), "{}", stderr(&human));
        (v, stdout(&human))
    };
    let (v, human) = dry_run(&ws);
    let p = &v["sites"][0];
    let decisions: Vec<(u64, &str)> = p["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_u64().unwrap(), s["decision"].as_str().unwrap()))
        .collect();
    assert_eq!(
        decisions,
        [(1, "skipped"), (2, "unreachable"), (3, "chosen"), (4, "fallback")],
        "{p}"
    );
    assert!(
        p["servers"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("Not enough space"),
        "{p}"
    );
    assert_eq!(p["chosen_server"], 3);
    assert_eq!(p["source"]["files"], 3, "index.php, wp-config.php and the photo: {p}");
    assert_eq!(p["source"]["excluded"]["files"], 1, "{p}");
    assert_eq!(p["database"]["would_dump"], true);
    assert_eq!(p["database"]["name"], "wp_dry");
    assert_eq!(p["hooks"]["before"], 1);
    assert!(human.contains("would store on server 3"), "{human}");
    assert!(human.contains("wp_dry at 127.0.0.1:1 would be dumped"), "{human}");
    assert!(
        human.contains("server 1 S3Server(1:") && human.contains("skipped: Not enough space"),
        "{human}"
    );
    assert!(!human.contains("pw-not-shown") && !v.to_string().contains("pw-not-shown"));

    // Nothing written: no catalog, no lock, no spool, no object, no hook.
    assert!(
        !ws.state_dir().exists(),
        "state dir created: {:?}",
        entries_of(ws.path())
    );
    assert!(!hook_mark.exists(), "the before hook ran");
    assert!(entries_of(&local).is_empty());
    let buckets_after: Vec<_> = rig.buckets[..2].iter().map(|b| rig.keys(b, &prefix)).collect();
    assert_eq!(buckets_before, buckets_after);

    // With a catalog: a real backup (server 2 now answers; no database to
    // dump), then a dry run changes no row.
    ws.set_env(rig.server_env(2, &rig.buckets[1]));
    std::fs::remove_file(site.join("wp-config.php")).unwrap();
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    std::fs::remove_file(&hook_mark).unwrap();
    let counts = catalog_counts(&ws.state_dir());
    let keys = rig.keys(&rig.buckets[1], &prefix);
    let (v, _) = dry_run(&ws);
    let p = &v["sites"][0];
    assert_eq!(p["chosen_server"], 2, "{p}");
    assert!(p["estimate_basis"].as_str().unwrap().contains("last archive"), "{p}");
    assert_eq!(catalog_counts(&ws.state_dir()), counts);
    assert_eq!(rig.keys(&rig.buckets[1], &prefix), keys);
    assert!(!hook_mark.exists());
    assert!(!ws.state_dir().join("spool").exists() || entries_of(&ws.state_dir().join("spool")).is_empty());

    // A site whose directory is gone: the dry run says the backup would fail.
    std::fs::rename(&site, ws.path().join("moved")).unwrap();
    let out = ws.cmd().args(["backup", "--dry-run", "blog"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("would FAIL: site directory"), "{}", stdout(&out));
}

#[test]
fn completions_for_every_shell_without_a_configuration() {
    let ws = Workspace::new("completions");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ws.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("sitebackup"), "{shell}");
    }
    let out = ws.cmd().args(["completions", "fish"]).output().unwrap();
    let fish = stdout(&out);
    for sub in ["backup", "restore", "ls", "verify", "list", "prune", "completions"] {
        assert!(
            fish.lines()
                .any(|l| l.starts_with("complete -c sitebackup") && l.contains(&format!("-a \"{sub}\""))),
            "fish completions lack {sub}"
        );
    }
    assert!(
        fish.contains("-l dry-run") && fish.contains("-l include"),
        "options too"
    );
    let out = ws.cmd().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
