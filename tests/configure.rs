//! `sitebackup configure`: the wizard driven through a real pseudo-terminal
//! (rexpect) and its scriptable twin, against the rig's Garage and a real
//! master. Results are read back by the binary's own `config check` and
//! `servers`, and by tools we did not write (Python's tomllib, bash's
//! `source` of the env file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::daemon::{NotifySocket, spawn_daemon};
use common::master::Master;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WRONG_SECRET: &str = "wrongSECRETwrongSECRET0123456789abcdef";

fn env_file(ws: &Workspace) -> PathBuf {
    ws.path().join("sitebackup.env")
}

fn config_file(ws: &Workspace) -> PathBuf {
    ws.path().join("config.toml")
}

/// `sitebackup --config … --env-file … ARGS`.
fn run(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.cmd()
        .arg("--env-file")
        .arg(env_file(ws))
        .args(args)
        .output()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A file holding `text`, mode 0600.
fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A WordPress site with a wp-config.php.
fn wordpress_site(ws: &Workspace, name: &str, password: &str) -> PathBuf {
    let site = ws.make_site(name, 1000);
    std::fs::write(
        site.join("wp-config.php"),
        format!(
            "<?php\n// ** Database settings ** //\ndefine( 'DB_NAME', 'wp_{name}' );\ndefine( 'DB_USER', '{name}_user' );\ndefine( 'DB_PASSWORD', '{password}' );\ndefine( 'DB_HOST', 'localhost' );\n"
        ),
    )
    .unwrap();
    site
}

/// `python3 -c 'tomllib.load(…)'`: the TOML as an independent parser reads it.
fn toml_by_python(path: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "tomllib: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of `var` after bash sources the env file (as a shell would).
fn env_by_bash(path: &Path, var: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", &format!("set -a; . \"$1\"; printf %s \"${var}\""), "bash"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "bash: {}", stderr(&out));
    stdout(&out)
}

/// The wizard on a pseudo-terminal, with the terminal's echo on (as on a
/// real terminal), so a secret prompt that failed to turn it off shows.
struct Pty {
    session: rexpect::session::PtySession,
    transcript: String,
}

impl Pty {
    fn spawn(ws: &Workspace) -> Self {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("stty echo rows 40 cols 120 && exec \"$0\" \"$@\"")
            .arg(assert_cmd::cargo::cargo_bin("sitebackup"))
            .arg("--config")
            .arg(config_file(ws))
            .arg("--env-file")
            .arg(env_file(ws))
            .arg("configure");
        for k in inherited_settings() {
            cmd.env_remove(k);
        }
        cmd.env("TERM", "xterm").env("NO_COLOR", "1").current_dir(ws.path());
        let options = rexpect::reader::Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true);
        Self {
            session: rexpect::session::spawn_with_options(cmd, options).unwrap(),
            transcript: String::new(),
        }
    }

    fn expect(&mut self, needle: &str) {
        match self.session.exp_string(needle) {
            Ok(before) => {
                self.transcript.push_str(&before);
                self.transcript.push_str(needle);
            }
            Err(e) => {
                let t = &self.transcript;
                let tail = &t[t.floor_char_boundary(t.len().saturating_sub(4000))..];
                panic!("waiting for {needle:?}: {e}\n--- end of the transcript so far:\n{tail}")
            }
        }
    }

    /// Keys as typed (`j`/`k` move in a menu, `\r` is Enter).
    fn keys(&mut self, keys: &str) {
        self.session.send(keys).unwrap();
        self.session.flush().unwrap();
    }

    /// Wait for `prompt`, then type `text` and Enter.
    fn answer(&mut self, prompt: &str, text: &str) {
        self.expect(prompt);
        self.keys(&format!("{text}\r"));
    }

    /// Wait for the hidden prompt and for the terminal to stop echoing,
    /// then type the secret.
    fn secret(&mut self, prompt: &str, text: &str) {
        use nix::sys::termios::{LocalFlags, tcgetattr};
        self.expect(prompt);
        let pty = self.session.process().get_file_handle().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let flags = tcgetattr(&pty).unwrap().local_flags;
            if !flags.contains(LocalFlags::ECHO) && flags.contains(LocalFlags::ICANON) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal still echoes at {prompt:?}: a secret prompt must turn echo off\n{}",
                self.transcript
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.keys(&format!("{text}\n"));
    }

    /// Wait for the wizard to exit; (transcript, exit code).
    fn finish(mut self) -> (String, i32) {
        let rest = self.session.exp_eof().unwrap_or_default();
        self.transcript.push_str(&rest);
        let status = self.session.process().wait().unwrap();
        let code = match status {
            nix::sys::wait::WaitStatus::Exited(_, code) => code,
            other => panic!("wizard ended with {other:?}\n{}", self.transcript),
        };
        (self.transcript, code)
    }
}

/// The add-a-server form of the wizard ("Other S3-compatible server").
fn wizard_add_server(pty: &mut Pty, rig: &Rig, bucket: &str, secret: &str, limit: &str) {
    pty.expect("Add a server");
    pty.keys("\r"); // Add a server
    pty.expect("Provider");
    pty.keys("k\r"); // the last one: Other S3-compatible server
    pty.answer("Region: ", &rig.region);
    pty.answer("Endpoint: ", &rig.endpoint);
    pty.answer("Bucket", bucket);
    pty.answer("Storage limit in GB", limit);
    pty.secret("Access key id", &rig.access_key);
    pty.secret("Secret key", secret);
}

#[test]
fn wizard_tests_servers_live_adds_a_wordpress_site_and_saves() {
    let rig = Rig::get();
    let ws = Workspace::new("wizard");
    ws.write_config("");
    let text = std::fs::read_to_string(config_file(&ws)).unwrap();
    std::fs::write(
        config_file(&ws),
        format!("# Hand-written: the ops team keeps this file.\n{text}"),
    )
    .unwrap();
    let site = wordpress_site(&ws, "blog", "Wp-Pass-Never-Shown-42");

    let mut pty = Pty::spawn(&ws);
    pty.expect("What do you want to set up?");
    pty.keys("\r"); // S3 Storage
    // Server 1 with a wrong secret: the live test fails with the seed's
    // wording and advice; the operator fixes the secret.
    wizard_add_server(&mut pty, &rig, &rig.buckets[0], WRONG_SECRET, "");
    pty.expect("Invalid S3 credentials");
    pty.expect("Verify access key and secret key are correct");
    pty.expect("What now?");
    pty.keys("\r"); // Fix the values
    pty.answer("Region", "");
    pty.answer("Endpoint", "");
    pty.answer("Bucket", "");
    pty.answer("Storage limit in GB", "");
    pty.secret("Access key id (empty: keep", "");
    pty.secret("Secret key (empty: keep", &rig.secret_key);
    pty.expect("OK (reachable, credentials valid, bucket exists)");
    // Server 2 passes at once.
    wizard_add_server(&mut pty, &rig, &rig.buckets[1], &rig.secret_key, "0.5");
    pty.expect("OK (reachable, credentials valid, bucket exists)");
    pty.expect("Add a server");
    pty.keys("k\r"); // Back
    // A WordPress site: its database is detected, its password not shown.
    pty.expect("What do you want to set up?");
    pty.keys("j\r"); // Sites
    pty.expect("Add a site");
    pty.keys("\r");
    pty.answer("Site directory", site.to_str().unwrap());
    pty.expect("WordPress detected: database wp_blog");
    pty.answer("Site name", "");
    pty.expect("Schedule");
    pty.keys("\r"); // daily
    pty.expect("Retention");
    pty.keys("\r"); // standard
    pty.expect("Site blog added");
    pty.expect("Add a site");
    pty.keys("k\r"); // Back
    pty.expect("What do you want to set up?");
    pty.keys("kk\r"); // Save and exit
    pty.expect("Check it any time with");
    let (transcript, code) = pty.finish();
    assert_eq!(code, 0, "{transcript}");
    for secret in [
        WRONG_SECRET,
        rig.secret_key.as_str(),
        rig.access_key.as_str(),
        "Wp-Pass-Never-Shown-42",
    ] {
        assert!(
            !transcript.contains(secret),
            "a secret was shown on the terminal:\n{transcript}"
        );
    }

    // What was written, as other tools read it.
    assert_eq!(mode(&env_file(&ws)), 0o600);
    assert_eq!(env_by_bash(&env_file(&ws), "S3_SERVER_1_SECRET_KEY"), rig.secret_key);
    assert_eq!(env_by_bash(&env_file(&ws), "S3_SERVER_2_ACCESS_KEY"), rig.access_key);
    let toml_text = std::fs::read_to_string(config_file(&ws)).unwrap();
    assert!(
        toml_text.starts_with("# Hand-written: the ops team keeps this file.\n"),
        "{toml_text}"
    );
    assert!(
        !toml_text.contains(&rig.secret_key) && !toml_text.contains("Wp-Pass"),
        "{toml_text}"
    );
    let toml = toml_by_python(&config_file(&ws));
    assert_eq!(toml["servers"][0]["bucket"], rig.buckets[0].as_str());
    assert_eq!(toml["servers"][1]["storage_limit_gb"], 0.5);
    assert_eq!(toml["sites"][0]["name"], "blog");
    assert_eq!(toml["sites"][0]["retention"]["keep_daily"], 14);
    assert!(
        toml["sites"][0].get("database").is_none(),
        "wp-config.php is read at backup time"
    );

    let out = run(&ws, &["config", "check"]);
    assert!(out.status.success(), "config check: {}", stderr(&out));
    let out = run(&ws, &["servers"]);
    let text = stdout(&out);
    assert!(out.status.success(), "servers: {text}{}", stderr(&out));
    assert!(text.starts_with("Configured S3 servers: 2\n"), "{text}");
    assert_eq!(text.matches("Status: OK").count(), 2, "{text}");

    // Re-run the wizard to remove server 1: hand-written comments in both
    // files stay.
    let mut env_text = std::fs::read_to_string(env_file(&ws)).unwrap();
    env_text.push_str("# Rotate the keys every 90 days (ticket OPS-17).\n");
    std::fs::write(env_file(&ws), env_text).unwrap();
    let toml_text = toml_text.replacen("[[servers]]", "# Primary: the office Garage.\n[[servers]]", 1);
    std::fs::write(config_file(&ws), toml_text).unwrap();
    let mut pty = Pty::spawn(&ws);
    pty.expect("What do you want to set up?");
    pty.keys("\r"); // S3 Storage
    pty.expect("Add a server");
    pty.keys("jj\r"); // Remove a server
    pty.expect("Remove which server?");
    pty.keys("\r"); // server 1
    pty.expect("Remove S3Server(1");
    pty.keys("y"); // a confirmation takes one key, no Enter
    pty.expect("Add a server");
    pty.keys("k\r"); // Back
    pty.expect("What do you want to set up?");
    pty.keys("kk\r"); // Save and exit
    pty.expect("Check it any time with");
    let (transcript, code) = pty.finish();
    assert_eq!(code, 0, "{transcript}");
    let env_text = std::fs::read_to_string(env_file(&ws)).unwrap();
    assert!(
        env_text.contains("# Rotate the keys every 90 days (ticket OPS-17).\n"),
        "{env_text}"
    );
    assert!(!env_text.contains("S3_SERVER_1_"), "{env_text}");
    let toml_text = std::fs::read_to_string(config_file(&ws)).unwrap();
    assert!(
        toml_text.contains("# Hand-written: the ops team keeps this file.\n"),
        "{toml_text}"
    );
    assert!(toml_text.contains("# Primary: the office Garage.\n"), "{toml_text}");
    assert!(config_file(&ws).with_extension("toml.bak").exists());
    let out = run(&ws, &["servers"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.starts_with("Configured S3 servers: 1\n") && text.contains("S3Server(2: "),
        "{text}"
    );
}

#[test]
fn bare_configure_without_a_terminal_explains_the_subcommands() {
    let ws = Workspace::new("notty");
    let out = run(&ws, &["configure"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("needs a terminal"), "{err}");
    assert!(err.contains("configure s3 add --endpoint"), "{err}");
    assert!(!config_file(&ws).exists() && !env_file(&ws).exists());
}

#[test]
fn s3_add_tests_live_and_writes_keys_only_to_the_env_file() {
    let rig = Rig::get();
    let ws = Workspace::new("s3add");
    ws.write_config("# keep me\n");
    let before = std::fs::read_to_string(config_file(&ws)).unwrap();
    let ak = secret_file(ws.path(), "ak", &rig.access_key);
    let wrong = secret_file(ws.path(), "wrong", WRONG_SECRET);
    let sk = secret_file(ws.path(), "sk", &rig.secret_key);
    let add = |bucket: &str, secret: &Path| {
        run(
            &ws,
            &[
                "configure",
                "s3",
                "add",
                "--endpoint",
                &rig.endpoint,
                "--region",
                &rig.region,
                "--bucket",
                bucket,
                "--access-key-file",
                ak.to_str().unwrap(),
                "--secret-key-file",
                secret.to_str().unwrap(),
            ],
        )
    };

    // A wrong secret: the live test fails, nothing is written.
    let out = add(&rig.buckets[0], &wrong);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Invalid S3 credentials") && err.contains("Verify access key"),
        "{err}"
    );
    assert!(!err.contains(WRONG_SECRET), "{err}");
    assert!(!env_file(&ws).exists());
    assert_eq!(std::fs::read_to_string(config_file(&ws)).unwrap(), before);

    let out = add(&rig.buckets[0], &sk);
    assert!(out.status.success(), "{}", stderr(&out));
    // The second server's keys from stdin, one per line.
    let out = ws
        .cmd()
        .arg("--env-file")
        .arg(env_file(&ws))
        .args([
            "configure",
            "s3",
            "add",
            "--endpoint",
            &rig.endpoint,
            "--region",
            &rig.region,
            "--bucket",
            &rig.buckets[1],
            "--storage-limit-gb",
            "2.5",
            "--access-key-file",
            "-",
            "--secret-key-file",
            "-",
        ])
        .write_stdin(format!("{}\n{}\n", rig.access_key, rig.secret_key))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains(&rig.secret_key), "{all}");

    assert_eq!(mode(&env_file(&ws)), 0o600);
    assert_eq!(env_by_bash(&env_file(&ws), "S3_SERVER_2_SECRET_KEY"), rig.secret_key);
    let toml_text = std::fs::read_to_string(config_file(&ws)).unwrap();
    assert!(
        toml_text.contains("# keep me\n") && !toml_text.contains(&rig.secret_key),
        "{toml_text}"
    );
    let toml = toml_by_python(&config_file(&ws));
    assert_eq!(toml["servers"][1]["id"], 2);
    assert_eq!(toml["servers"][1]["storage_limit_gb"], 2.5);
    assert_eq!(toml["servers"][0]["endpoint"], rig.endpoint.as_str());

    let out = run(&ws, &["--json", "configure", "s3", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(!stdout(&out).contains(&rig.secret_key));
    let out = run(&ws, &["servers"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(stdout(&out).matches("Status: OK").count(), 2, "{}", stdout(&out));
}

#[test]
fn invalid_input_exits_2_and_writes_nothing() {
    let ws = Workspace::new("invalid");
    let backups = ws.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    ws.write_config(&format!(
        "# a comment\n[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n",
        backups.display()
    ));
    let before = std::fs::read(config_file(&ws)).unwrap();
    let ak = secret_file(ws.path(), "ak", "AKIDEXAMPLE");
    let sk = secret_file(ws.path(), "sk", "Secret-Value-Not-Printed");
    let add = |extra: &[&str]| {
        let mut args = vec![
            "configure",
            "s3",
            "add",
            "--endpoint",
            "s3.example.invalid",
            "--region",
            "r1",
            "--access-key-file",
            ak.to_str().unwrap(),
            "--secret-key-file",
            sk.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&ws, &args)
    };
    // A bucket name the whole-config validation refuses.
    let out = add(&["--bucket", "ab"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("servers[id=2].bucket") && err.contains("S3_SERVER_2_BUCKET"),
        "{err}"
    );
    // A world-readable key file.
    std::fs::set_permissions(&sk, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = add(&["--bucket", "good-bucket", "--no-test"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--secret-key-file") && err.contains("world-readable"),
        "{err}"
    );
    assert!(!err.contains("Secret-Value-Not-Printed"), "{err}");
    // A site that is not a directory; a schedule that is not cron.
    let out = run(&ws, &["configure", "site", "add", "--path", "relative/dir"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let site = ws.make_site("s", 10);
    let out = run(
        &ws,
        &[
            "configure",
            "site",
            "add",
            "--path",
            site.to_str().unwrap(),
            "--schedule",
            "*/5 * *",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--schedule"), "{}", stderr(&out));
    // Removing the last server would leave no server.
    let out = run(&ws, &["configure", "s3", "remove", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("No S3 servers configured"), "{}", stderr(&out));

    assert_eq!(std::fs::read(config_file(&ws)).unwrap(), before);
    assert!(!env_file(&ws).exists());
    assert!(!config_file(&ws).with_extension("toml.bak").exists());
}

/// A setup carried over from the original tool: servers in the env file,
/// with comments; one server in the TOML file.
fn legacy_setup(ws: &Workspace) {
    ws.write_config(
        "# Hand-written TOML comment.\n\n# Server 3: the local Garage.\n[[servers]]\nid = 3\nendpoint = \"http://127.0.0.1:9\"\nregion = \"garage\"\nbucket = \"third\"\nsecret_key_file = \"/nonexistent\"\n",
    );
    std::fs::write(
        env_file(ws),
        "# Server 1: iDrive E2 (Primary)\nS3_SERVER_1_ENDPOINT=\"t5k4.ldn.idrivee2-61.com\"\nS3_SERVER_1_REGION=\"eu-west-3\"\nS3_SERVER_1_ACCESS_KEY=\"AK1\"\nS3_SERVER_1_SECRET_KEY=\"SK1\"\nS3_SERVER_1_BUCKET=\"wordpress-backups\"\n\n# Server 2: AWS S3 (Backup)\nS3_SERVER_2_ENDPOINT=\"s3.amazonaws.com\"\nS3_SERVER_2_REGION=\"us-east-1\"\nS3_SERVER_2_ACCESS_KEY=\"AK2\"\nS3_SERVER_2_SECRET_KEY=\"SK2\"\nS3_SERVER_2_BUCKET=\"my-wp-backups\"\nS3_SERVER_3_ACCESS_KEY=\"AK3\"\n",
    )
    .unwrap();
    std::fs::set_permissions(env_file(ws), std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn edit_move_and_remove_keep_comments_and_edit_values_where_they_are() {
    let ws = Workspace::new("legacy");
    legacy_setup(&ws);
    // Server 3's secret comes from a file that does not exist: fix it
    // from stdin (untested: the endpoint is a dead port).
    let out = ws
        .cmd()
        .arg("--env-file")
        .arg(env_file(&ws))
        .args(["configure", "s3", "edit", "3", "--secret-key-file", "-", "--no-test"])
        .write_stdin("SK3\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // A field the env file sets is changed there (the env file wins).
    let out = run(
        &ws,
        &[
            "configure",
            "s3",
            "edit",
            "1",
            "--bucket",
            "renamed-bucket",
            "--no-test",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let env_text = std::fs::read_to_string(env_file(&ws)).unwrap();
    assert!(
        env_text.contains("S3_SERVER_1_BUCKET=\"renamed-bucket\"\n"),
        "{env_text}"
    );
    assert!(env_text.contains("S3_SERVER_3_SECRET_KEY=\"SK3\"\n"), "{env_text}");
    let toml_text = std::fs::read_to_string(config_file(&ws)).unwrap();
    assert!(
        !toml_text.contains("secret_key_file") && !toml_text.contains("renamed"),
        "{toml_text}"
    );

    // Server 3 to the front: 3 → 1, 1 → 2, 2 → 3, in both files.
    let out = run(&ws, &["configure", "s3", "move", "3", "--to", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&ws, &["--json", "configure", "s3", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let order: Vec<(u64, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_u64().unwrap(), s["bucket"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        order,
        [
            (1, "third".to_string()),
            (2, "renamed-bucket".to_string()),
            (3, "my-wp-backups".to_string())
        ]
    );
    assert_eq!(env_by_bash(&env_file(&ws), "S3_SERVER_1_SECRET_KEY"), "SK3");
    assert_eq!(env_by_bash(&env_file(&ws), "S3_SERVER_3_ACCESS_KEY"), "AK2");

    let out = run(&ws, &["configure", "s3", "remove", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env_text = std::fs::read_to_string(env_file(&ws)).unwrap();
    assert!(
        env_text.contains("# Server 1: iDrive E2 (Primary)\n") && env_text.contains("# Server 2: AWS S3 (Backup)\n"),
        "{env_text}"
    );
    assert!(!env_text.contains("S3_SERVER_2_"), "{env_text}");
    let toml_text = std::fs::read_to_string(config_file(&ws)).unwrap();
    assert!(
        toml_text.contains("# Hand-written TOML comment.\n") && toml_text.contains("# Server 3: the local Garage.\n"),
        "{toml_text}"
    );
    let out = run(&ws, &["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&ws, &["--json", "config", "check"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u64> = v["config"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);
}

#[test]
fn site_add_detects_wordpress_and_never_shows_the_password() {
    let ws = Workspace::new("siteadd");
    let backups = ws.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    ws.write_config(&format!(
        "[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n",
        backups.display()
    ));
    let site = wordpress_site(&ws, "shop", "Shop-Db-Pass-99");
    let out = run(
        &ws,
        &[
            "configure",
            "site",
            "add",
            "--path",
            site.to_str().unwrap(),
            "--schedule",
            "30 2 * * *",
            "--retention",
            "minimal",
            "--exclude",
            "wp-content/cache/**",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("WordPress detected: database wp_shop on localhost as user shop_user"),
        "{err}"
    );
    assert!(!err.contains("Shop-Db-Pass-99") && !stdout(&out).contains("Shop-Db-Pass-99"));
    let toml = toml_by_python(&config_file(&ws));
    let s = &toml["sites"][0];
    assert_eq!(s["name"], "shop");
    assert_eq!(s["schedule"], "30 2 * * *");
    assert_eq!(s["retention"], serde_json::json!({"keep_last": 3, "keep_daily": 7}));
    assert_eq!(s["exclude"], serde_json::json!(["wp-content/cache/**"]));
    // The same name twice is refused.
    let out = run(&ws, &["configure", "site", "add", "--path", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    // The database as the backup will resolve it.
    let out = run(&ws, &["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&ws, &["configure", "site", "remove", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        toml_by_python(&config_file(&ws))
            .get("sites")
            .is_none_or(|s| s.as_array().unwrap().is_empty())
    );
}

#[test]
fn node_set_tests_the_master_and_keeps_the_token_private() {
    let master = Master::start();
    let (node_uuid, token) = master.add_node("wizard-node");
    let ws = Workspace::new("nodeset");
    ws.write_config("# node host\n");
    let good = secret_file(ws.path(), "token.in", &token);
    let bad = secret_file(ws.path(), "bad.in", "not-the-token-0123456789-0123456789");
    let kept = ws.path().join("node.token");
    let set = |token_file: &Path| {
        run(
            &ws,
            &[
                "configure",
                "node",
                "set",
                "--url",
                &master.url,
                "--node-uuid",
                &node_uuid,
                "--token-file",
                token_file.to_str().unwrap(),
            ],
        )
    };
    let out = set(&bad);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused this node's token"), "{err}");
    assert!(!kept.exists());
    assert!(!std::fs::read_to_string(config_file(&ws)).unwrap().contains("mode"));

    let out = set(&good);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&token) && !stdout(&out).contains(&token));
    assert_eq!(mode(&kept), 0o600);
    assert_eq!(std::fs::read_to_string(&kept).unwrap().trim(), token);
    let toml = toml_by_python(&config_file(&ws));
    assert_eq!(toml["mode"], "node");
    assert_eq!(toml["master"]["node_uuid"], node_uuid.as_str());
    assert_eq!(toml["master"]["token_file"], kept.to_str().unwrap());
    assert!(!std::fs::read_to_string(config_file(&ws)).unwrap().contains(&token));
    let out = run(&ws, &["node", "status"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("(reachable)"), "{}", stdout(&out));
}

#[test]
fn a_running_daemon_gets_reload_or_restart_advice() {
    let ws = Workspace::new("daemonadvice");
    let backups = ws.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    ws.write_config(&format!(
        "[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n",
        backups.display()
    ));
    let notify = NotifySocket::new(ws.path());
    let _daemon = spawn_daemon(&ws, &notify, &[]);
    notify.wait_for("READY=1", 0, Duration::from_secs(30));
    // Only the TOML changes: a reload is enough.
    let site = ws.make_site("s", 10);
    let out = run(&ws, &["configure", "site", "add", "--path", site.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("The daemon is running: apply with `systemctl reload sitebackup`"),
        "{err}"
    );
    // The env file changes: the daemon must restart to read it.
    let ak = secret_file(ws.path(), "ak", "AK");
    let sk = secret_file(ws.path(), "sk", "SK");
    let out = run(
        &ws,
        &[
            "configure",
            "s3",
            "add",
            "--endpoint",
            "http://127.0.0.1:9",
            "--region",
            "r",
            "--bucket",
            "b-b-b",
            "--access-key-file",
            ak.to_str().unwrap(),
            "--secret-key-file",
            sk.to_str().unwrap(),
            "--no-test",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("apply with `systemctl restart sitebackup`"), "{err}");
}

/// The env file wins over the TOML: `configure node` refuses to edit a
/// setting an env variable overrides, instead of saving a change that
/// would not take effect.
#[test]
fn node_settings_overridden_by_the_env_file_are_refused() {
    let mut ws = Workspace::new("node-env");
    let backups = ws.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    ws.write_config(&format!(
        "[[servers]]\nid = 1\ntype = \"local\"\npath = \"{}\"\n",
        backups.display()
    ));
    let before = std::fs::read(config_file(&ws)).unwrap();
    ws.set_env([("SITEBACKUP_MODE".to_string(), "standalone".to_string())]);
    let out = run(&ws, &["configure", "node", "disable"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("SITEBACKUP_MODE"), "{err}");
    assert_eq!(std::fs::read(config_file(&ws)).unwrap(), before, "nothing written");
}
