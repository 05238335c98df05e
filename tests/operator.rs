//! What an operator sees, through the real binary: configuration errors
//! all at once, `config check`'s provenance and output contract, exit
//! codes, the failover summary, the `--json` shapes, and the progress bar
//! under a pseudo-terminal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::Path;

/// The config the workspace helper writes, with `extra` replacing its body.
fn write_raw_config(ws: &Workspace, text: &str) {
    std::fs::write(ws.path().join("config.toml"), text).unwrap();
}

fn local_server(ws: &Workspace, id: u32) -> String {
    let dir = ws.path().join(format!("store{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    format!(
        "[[servers]]\nid = {id}\ntype = \"local\"\npath = \"{}\"\n",
        dir.display()
    )
}

#[test]
fn every_config_problem_is_reported_in_one_run() {
    let ws = Workspace::new("allerrors");
    let site = ws.make_site("site", 10);
    write_raw_config(
        &ws,
        &format!(
            "stat_dir = \"/tmp/x\"\n[upload]\npart_sise_mb = 5\n{}storage_limt_gb = 2\n\
             [[sites]]\nname = \"a\"\npath = \"{site}\"\nschedul = \"0 3 * * *\"\n\
             [[sites]]\nname = \"b\"\npath = \"{site}\"\nschedule = 5\n",
            local_server(&ws, 1),
            site = site.display()
        ),
    );
    let out = ws.cmd().args(["config", "check"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for expected in [
        "stat_dir: unknown key \"stat_dir\"; did you mean \"state_dir\"?",
        "upload.part_sise_mb: unknown key \"part_sise_mb\"; did you mean \"part_size_mb\"?",
        "servers[id=1].storage_limt_gb: unknown key \"storage_limt_gb\"; did you mean \"storage_limit_gb\"?",
        "sites[name=a].schedul: unknown key \"schedul\"; did you mean \"schedule\"?",
        "sites[name=b].schedule: invalid type: integer `5`, expected a string",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
    assert!(err.contains("(5 problem(s))"), "{err}");

    // --json lists the same problems, each with its key.
    let out = ws.cmd().args(["--json", "config", "check"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 5, "{v}");
    assert!(keys.contains(&"upload.part_sise_mb"), "{keys:?}");

    // A duplicate key names the key.
    write_raw_config(&ws, "host_id = \"a\"\nhost_id = \"b\"\n");
    let out = ws.cmd().args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("duplicate key") && stderr(&out).contains("host_id"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn five_field_crontab_lines_are_accepted_beside_six_field_ones() {
    let ws = Workspace::new("cron5");
    let site = ws.make_site("site", 10);
    ws.write_config(&format!(
        "{}[[sites]]\nname = \"five\"\npath = \"{p}\"\nschedule = \"30 8 * * 1-5\"\n\
         [[sites]]\nname = \"six\"\npath = \"{p}\"\nschedule = \"0 30 8 * * 1-5\"\n",
        local_server(&ws, 1),
        p = site.display()
    ));
    let out = ws.cmd().args(["--json", "config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["sites"][0]["schedule"], "30 8 * * 1-5");
    assert_eq!(v["config"]["sites"][1]["schedule"], "0 30 8 * * 1-5");
}

/// `config check` prints a TOML file: parsed back, with the redacted
/// secrets put back, it loads to the same effective configuration.
#[test]
fn config_check_prints_toml_that_loads_back_to_the_same_config() {
    let mut ws = Workspace::new("roundtrip");
    let site = ws.make_site("site", 10);
    std::fs::write(site.join("wp-config.php"), "<?php define('DB_NAME', 'wp');\n").unwrap();
    let secret = "s3cret-Value-for-roundtrip-0123456789";
    ws.set_env([
        ("S3_SERVER_2_ENDPOINT".to_string(), "http://127.0.0.1:9".to_string()),
        ("S3_SERVER_2_REGION".to_string(), "garage".to_string()),
        ("S3_SERVER_2_BUCKET".to_string(), "sb-roundtrip".to_string()),
        (
            "S3_SERVER_2_ACCESS_KEY".to_string(),
            "GK0123456789abcdef01234567".to_string(),
        ),
        ("S3_SERVER_2_SECRET_KEY".to_string(), secret.to_string()),
    ]);
    ws.write_config(&format!(
        "{}[[sites]]\nname = \"blog\"\npath = \"{}\"\nschedule = \"15 2 * * *\"\nexclude = [\"wp-content/cache/\"]\n\
         [sites.database]\nname = \"wp\"\nuser = \"backup\"\npassword = \"db-pass-123\"\nhost = \"127.0.0.1\"\nport = 3307\n\
         [sites.retention]\nkeep_daily = 7\nkeep_weekly = 4\n\
         [sites.hooks]\nbefore = [\"echo before-token-xyz\"]\ntimeout_secs = 42\n",
        local_server(&ws, 1),
        site.display()
    ));
    let out = ws.cmd().args(["config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for leaked in [secret, "db-pass-123", "before-token-xyz"] {
        assert!(!text.contains(leaked), "{leaked} leaked:\n{text}");
    }
    // Where the settings came from: the file, and the variables by name.
    let config_path = ws.path().join("config.toml");
    assert!(
        text.contains(&format!("# Config file: {}", config_path.display())),
        "{text}"
    );
    assert!(text.contains("# Env file: none"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("# From the process environment") && l.contains("S3_SERVER_2_SECRET_KEY")),
        "{text}"
    );
    assert!(text.contains("part_size_mb = 5"), "the input's key names: {text}");

    // Parse it back, supply the secrets, and load it again.
    let mut doc: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"));
    let servers = doc["servers"].as_array_mut().unwrap();
    let s3 = servers
        .iter_mut()
        .find(|s| s["id"].as_integer() == Some(2))
        .unwrap()
        .as_table_mut()
        .unwrap();
    s3.insert("access_key".into(), "GK0123456789abcdef01234567".into());
    s3.insert("secret_key".into(), secret.into());
    let blog = doc["sites"].as_array_mut().unwrap()[0].as_table_mut().unwrap();
    blog["database"]
        .as_table_mut()
        .unwrap()
        .insert("password".into(), "db-pass-123".into());
    blog["hooks"].as_table_mut().unwrap().insert(
        "before".into(),
        toml::Value::Array(vec!["echo before-token-xyz".into()]),
    );
    let again = ws.path().join("again.toml");
    std::fs::write(&again, toml::to_string(&doc).unwrap()).unwrap();

    let effective = |config: &Path, env: bool| -> serde_json::Value {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("sitebackup"));
        for k in inherited_settings() {
            cmd.env_remove(k);
        }
        if env {
            cmd.envs(&ws.env);
        }
        let out = cmd
            .arg("--config")
            .arg(config)
            .args(["--json", "config", "check"])
            .current_dir(ws.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["config"].clone()
    };
    assert_eq!(effective(&config_path, true), effective(&again, false));
}

#[test]
fn config_check_quiet_prints_only_problems_and_names_a_missing_default_file() {
    let ws = Workspace::new("quiet");
    let gone = ws.path().join("gone");
    ws.write_config(&format!(
        "{}[[sites]]\nname = \"gone\"\npath = \"{}\"\n",
        local_server(&ws, 1),
        gone.display()
    ));
    let out = ws.cmd().args(["-q", "config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "-q prints no configuration");
    assert!(stderr(&out).contains("sites[name=gone].path"), "{}", stderr(&out));

    // No --config, no SITEBACKUP_CONFIG and nothing at the default path.
    let default = Path::new("/etc/sitebackup/config.toml");
    assert!(
        !default.exists(),
        "this test needs {} to be absent (it checks the message for a missing default file)",
        default.display()
    );
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("sitebackup"));
    for k in inherited_settings() {
        cmd.env_remove(k);
    }
    let out = cmd.args(["config", "check"]).current_dir(ws.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no config file: /etc/sitebackup/config.toml (the default) does not exist"),
        "{err}"
    );
}

#[test]
fn the_units_condition_skips_an_unconfigured_host_and_fails_a_broken_one() {
    let ws = Workspace::new("condition");
    ws.write_config("");
    let run = || {
        ws.cmd()
            .args(["-q", "config", "check", "--systemd-condition"])
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(1), "unconfigured: skip\n{}", stderr(&out));
    assert!(stderr(&out).contains("not configured yet"), "{}", stderr(&out));

    ws.write_config("[[servers]]\nid = 1\ntype = \"local\"\n");
    let out = run();
    assert_eq!(out.status.code(), Some(255), "invalid: fail\n{}", stderr(&out));
    assert!(stderr(&out).contains("servers[id=1].path"), "{}", stderr(&out));

    ws.write_config(&local_server(&ws, 1));
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn backup_names_the_failover_and_exits_3_on_warnings() {
    let rig = Rig::get();
    let mut ws = Workspace::new("failover-summary");
    let site = ws.make_site("site", 50_000);
    let empty = ws.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    ws.set_env(rig.server_env(1, "sb-no-such-bucket"));
    ws.write_config(&format!(
        "{}[[sites]]\nname = \"blog\"\npath = \"{}\"\n[[sites]]\nname = \"empty\"\npath = \"{}\"\n",
        local_server(&ws, 2),
        site.display(),
        empty.display()
    ));
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let line = text
        .lines()
        .find(|l| l.contains("stored on server 2 after server 1 failed: "))
        .unwrap_or_else(|| panic!("no failover line in\n{text}"));
    assert!(line.to_lowercase().contains("bucket"), "the reason is named: {line}");
    // The default verbosity logs no INFO line repeating stdout.
    assert!(!stderr(&out).contains("INFO"), "{}", stderr(&out));

    // --json: the server is an object.
    let out = ws.cmd().args(["--json", "backup", "blog"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let server = &v["results"][0]["archive"]["server"];
    assert_eq!(server["id"], 2, "{v}");
    assert_eq!(server["type"], "local", "{v}");
    assert_eq!(server["bucket"], ws.path().join("store2").display().to_string(), "{v}");

    // A site with no files is stored but suspect: a warning, exit 3.
    let out = ws.cmd().args(["backup", "empty"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("stored with warnings"), "{}", stdout(&out));
    // And a failure wins over warnings: exit 1.
    std::fs::remove_dir_all(ws.path().join("store2")).unwrap();
    let out = ws.cmd().args(["backup", "--all"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn runtime_errors_are_printed_as_errors() {
    let ws = Workspace::new("runtime-error");
    let site = ws.make_site("site", 10);
    ws.write_config(&format!(
        "{}[[sites]]\nname = \"blog\"\npath = \"{}\"\n",
        local_server(&ws, 1),
        site.display()
    ));
    // The state directory is a file: the catalog cannot be opened.
    std::fs::write(ws.state_dir(), b"not a directory").unwrap();
    let out = ws.cmd().args(["backup", "blog"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: ") || err.contains("\nerror: "), "{err}");
}

#[test]
fn list_shows_the_verify_state_and_verify_json_is_consistent() {
    let ws = Workspace::new("verify-state");
    let site = ws.make_site("site", 10_000);
    ws.write_config(&format!(
        "{}[[sites]]\nname = \"blog\"\npath = \"{}\"\n",
        local_server(&ws, 1),
        site.display()
    ));
    assert!(ws.cmd().args(["backup", "blog"]).output().unwrap().status.success());
    let list = stdout(&ws.cmd().arg("list").output().unwrap());
    assert!(list.lines().next().unwrap().contains("VERIFIED"), "{list}");
    assert!(list.lines().nth(1).unwrap().contains("never"), "{list}");

    let out = ws.cmd().args(["--json", "verify", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["id"], 1, "{v}");
    assert_eq!(r["requested"], "1", "{v}");
    assert!(r.get("archive").is_none(), "no second name for the archive: {v}");

    let list = stdout(&ws.cmd().arg("list").output().unwrap());
    let row = list.lines().nth(1).unwrap();
    assert!(row.contains(" ok 20"), "{list}");
}

#[test]
fn help_and_man_page_document_the_exit_codes() {
    let ws = Workspace::new("help");
    let out = ws.cmd().arg("--help").output().unwrap();
    let help = stdout(&out);
    for code in ["  0  ", "  1  ", "  2  ", "  3  backup: every site was stored"] {
        assert!(help.contains(code), "{code:?} missing from --help:\n{help}");
    }
    assert!(help.contains("Examples:"), "{help}");
    // The README's table says the same.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for (code, what) in sitebackup::cli::EXIT_CODES {
        assert!(help.contains(what), "{what:?} missing from --help");
        let row = format!("| {code} | ");
        assert!(
            readme.contains(&row),
            "the README's exit status table has no row {row:?}"
        );
    }
}

/// The bar under a pseudo-terminal (`script`): its byte count grows
/// across frames, in decimal units.
#[test]
fn the_progress_bar_moves_under_a_terminal() {
    let rig = Rig::get();
    let mut ws = Workspace::new("progress");
    let site = ws.make_site("site", 12_000_000);
    let proxy = ThrottleProxy::start(&rig.endpoint);
    proxy.shape(Throttle {
        upload_rate: Some(3_000_000),
        ..Throttle::default()
    });
    ws.set_env(rig.server_env(1, &rig.buckets[0]));
    ws.set_env([("S3_SERVER_1_ENDPOINT".to_string(), proxy.url.clone())]);
    ws.write_config(&format!("[[sites]]\nname = \"blog\"\npath = \"{}\"\n", site.display()));
    let bin = assert_cmd::cargo::cargo_bin("sitebackup");
    // A wide terminal, so that no frame is cut at 80 columns.
    let command = format!(
        "stty cols 200 rows 50; exec {} --config {} backup blog",
        bin.display(),
        ws.path().join("config.toml").display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qefc", &command, "/dev/null"]).current_dir(ws.path());
    for k in inherited_settings() {
        cmd.env_remove(k);
    }
    cmd.envs(&ws.env).env("NO_COLOR", "1");
    let out = cmd.output().unwrap();
    let screen = stdout(&out);
    assert!(out.status.success(), "{screen}\n{}", stderr(&out));
    let read: Vec<f64> = screen
        .split(['\r', '\n'])
        .filter_map(|frame| frame.split(" read, ").next().filter(|_| frame.contains(" read, ")))
        .filter_map(|head| head.rsplit("] ").next())
        .filter_map(|counts| decimal_bytes(counts.split('/').next()?))
        .collect();
    let moving: Vec<&f64> = read.iter().filter(|b| **b > 0.0).collect();
    assert!(
        moving.len() >= 2,
        "the bar's read count never moved: {read:?}\n{screen}"
    );
    assert!(
        read.windows(2).all(|w| w[1] >= w[0]) && read.last() > read.first(),
        "read counts must grow: {read:?}"
    );
    assert!(
        !screen.contains("MiB") && !screen.contains("KiB"),
        "decimal units: {screen}"
    );
    assert!(screen.contains("blog: stored on"), "{screen}");
}

/// `12.30 MB` → bytes.
fn decimal_bytes(text: &str) -> Option<f64> {
    let (n, unit) = text.trim().split_once(' ')?;
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some(n * scale)
}
