use super::load::read_toml;
use super::site::build_hooks;
use super::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn s3_env(id: u32, bucket: &str) -> Vec<(String, String)> {
    vec![
        (format!("S3_SERVER_{id}_ENDPOINT"), "s3.example.com".into()),
        (format!("S3_SERVER_{id}_REGION"), "eu-west-3".into()),
        (format!("S3_SERVER_{id}_ACCESS_KEY"), format!("AKIA{id}EXAMPLEKEY")),
        (
            format!("S3_SERVER_{id}_SECRET_KEY"),
            format!("SECRET-{id}-do-not-print"),
        ),
        (format!("S3_SERVER_{id}_BUCKET"), bucket.into()),
    ]
}

fn env_of(servers: &[(u32, &str)]) -> BTreeMap<String, String> {
    servers.iter().flat_map(|(id, b)| s3_env(*id, b)).collect()
}

fn toml(text: &str) -> RawConfig {
    ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .unwrap()
}

fn with_host(mut e: BTreeMap<String, String>) -> BTreeMap<String, String> {
    e.insert("SITEBACKUP_HOST_ID".into(), "test-host".into());
    e
}

#[test]
fn env_servers_sort_numerically_with_gaps() {
    let cfg = build(
        RawConfig::default(),
        &with_host(env_of(&[(10, "ten"), (2, "two"), (1, "one"), (7, "seven")])),
    )
    .unwrap();
    let ids: Vec<u32> = cfg.servers.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![1, 2, 7, 10]);
}

#[test]
fn storage_limit_defaults_to_100_gb_and_takes_decimals() {
    let mut e = env_of(&[(1, "one"), (2, "two")]);
    e.insert("S3_SERVER_2_STORAGE_LIMIT_GB".into(), "0.5".into());
    let cfg = build(RawConfig::default(), &with_host(e)).unwrap();
    assert_eq!(cfg.servers[0].storage_limit_bytes, 100_000_000_000);
    assert_eq!(cfg.servers[1].storage_limit_bytes, 500_000_000);
}

#[test]
fn env_wins_per_field_over_toml() {
    let raw = toml(
        r#"
        [[servers]]
        id = 3
        endpoint = "toml.example.com"
        region = "toml-region"
        bucket = "toml-bucket"
        access_key = "TOMLACCESSKEY1"
        secret_key = "toml-secret"
        storage_limit_gb = 2.5
        "#,
    );
    let e = env(&[
        ("S3_SERVER_3_BUCKET", "env-bucket"),
        ("S3_SERVER_3_SECRET_KEY", "env-secret"),
    ]);
    let cfg = build(raw, &with_host(e)).unwrap();
    let ServerKind::S3(s) = &cfg.servers[0].kind else {
        panic!("expected s3")
    };
    assert_eq!(s.bucket, "env-bucket");
    assert_eq!(s.region, "toml-region");
    assert_eq!(s.endpoint.display(), "toml.example.com");
    assert_eq!(s.secret_key.expose(), "env-secret");
    assert_eq!(cfg.servers[0].storage_limit_bytes, 2_500_000_000);
}

#[test]
fn every_problem_is_reported_at_once_with_key_and_env() {
    let mut e = env_of(&[(1, "one"), (2, "two")]);
    e.remove("S3_SERVER_2_BUCKET");
    e.insert("S3_SERVER_1_STORAGE_LIMIT_GB".into(), "lots".into());
    let raw = toml(
        r#"
        [[sites]]
        name = "blog"
        path = "/tmp"
        schedule = "every day"
        "#,
    );
    let err = build(raw, &with_host(e)).unwrap_err();
    let problems = err.problems();
    let text = err.to_string();
    assert!(
        problems
            .iter()
            .any(|p| p.env.as_deref() == Some("S3_SERVER_2_BUCKET") && p.key == "servers[id=2].bucket"),
        "{text}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.env.as_deref() == Some("S3_SERVER_1_STORAGE_LIMIT_GB")),
        "{text}"
    );
    assert!(problems.iter().any(|p| p.key == "sites[name=blog].schedule"), "{text}");
    assert!(!text.contains("do-not-print"), "{text}");
}

#[test]
fn unknown_env_fields_are_problems() {
    let mut e = env_of(&[(1, "one")]);
    e.insert("S3_SERVER_1_BUCKT".into(), "typo".into());
    let err = build(RawConfig::default(), &with_host(e)).unwrap_err();
    assert!(err.to_string().contains("S3_SERVER_1_BUCKT"), "{err}");
}

#[test]
fn non_aws_endpoints_default_to_path_style() {
    let mut e = env_of(&[(1, "one"), (2, "two")]);
    e.insert("S3_SERVER_2_ENDPOINT".into(), "s3.amazonaws.com".into());
    let cfg = build(RawConfig::default(), &with_host(e)).unwrap();
    let styles: Vec<bool> = cfg
        .servers
        .iter()
        .map(|s| match &s.kind {
            ServerKind::S3(s) => s.path_style,
            ServerKind::Local { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(styles, vec![true, false]);
}

#[test]
fn world_readable_secret_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "file-secret-value\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut e = env_of(&[(1, "one")]);
    e.remove("S3_SERVER_1_SECRET_KEY");
    e.insert("S3_SERVER_1_SECRET_KEY_FILE".into(), file.display().to_string());
    let err = build(RawConfig::default(), &with_host(e.clone())).unwrap_err();
    assert!(err.to_string().contains("world-readable"), "{err}");
    assert!(err.to_string().contains("S3_SERVER_1_SECRET_KEY_FILE"), "{err}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = build(RawConfig::default(), &with_host(e)).unwrap();
    let ServerKind::S3(s) = &cfg.servers[0].kind else {
        panic!()
    };
    assert_eq!(s.secret_key.expose(), "file-secret-value");
}

#[test]
fn redacted_config_holds_no_secret() {
    let cfg = build(RawConfig::default(), &with_host(env_of(&[(1, "one"), (4, "four")]))).unwrap();
    let json = serde_json::to_string(&cfg.redacted()).unwrap();
    let debug = format!("{cfg:?}");
    for text in [&json, &debug] {
        assert!(!text.contains("do-not-print"), "{text}");
        assert!(!text.contains("AKIA1EXAMPLEKEY"), "{text}");
    }
    assert!(json.contains("AKIA…"));
}

#[test]
fn local_server_needs_an_absolute_path() {
    let e = env(&[("S3_SERVER_1_TYPE", "local"), ("S3_SERVER_1_PATH", "relative/dir")]);
    let err = build(RawConfig::default(), &with_host(e)).unwrap_err();
    assert!(err.to_string().contains("S3_SERVER_1_PATH"), "{err}");
    let e = env(&[("S3_SERVER_1_TYPE", "local"), ("S3_SERVER_1_PATH", "/srv/backups")]);
    let cfg = build(RawConfig::default(), &with_host(e)).unwrap();
    assert!(matches!(cfg.servers[0].kind, ServerKind::Local { .. }));
    assert_eq!(cfg.servers[0].to_string(), "LocalServer(1: /srv/backups)");
}

#[test]
fn example_config_parses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    let raw = toml(&text);
    assert!(!raw.servers.is_empty());
    assert!(!raw.sites.is_empty());
    // Every site schedule in the example is valid cron.
    for s in &raw.sites {
        crate::schedule::Schedule::parse(s.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE)).unwrap();
    }
    // The database and hook sections are documented and valid.
    let site = &raw.sites[0];
    assert_eq!(
        site.database.as_ref().and_then(|d| d.name.as_deref()),
        Some("wp_zimpricecheck")
    );
    let mut problems = Vec::new();
    let hooks = build_hooks(site.hooks.clone().unwrap(), &|f| f.to_string(), &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((hooks.before.len(), hooks.after.len(), hooks.on_error.len()), (1, 1, 1));
    assert_eq!(hooks.timeout_secs, 300);
    assert_eq!(raw.network.idle_timeout_secs, Some(DEFAULT_IDLE_TIMEOUT_SECS));
}

#[test]
fn hooks_default_and_validate() {
    let raw = toml(
        r#"
        [[sites]]
        name = "blog"
        path = "/tmp"
        [sites.hooks]
        before = ["true"]
        "#,
    );
    let cfg = build(raw, &with_host(env_of(&[(1, "one")]))).unwrap();
    assert_eq!(cfg.sites[0].hooks.before, vec![Secret::new("true")]);
    assert_eq!(cfg.sites[0].hooks.timeout_secs, DEFAULT_HOOK_TIMEOUT_SECS);
    assert!(!cfg.sites[0].hooks.before_optional);

    let raw = toml(
        r#"
        [[sites]]
        name = "blog"
        path = "/tmp"
        [sites.hooks]
        after = ["ok", "  "]
        timeout_secs = 0
        [sites.database]
        socket = "/run/mysqld/mysqld.sock"
        host = "db"
        password = "pw-only"
        "#,
    );
    let err = build(raw, &with_host(env_of(&[(1, "one")]))).unwrap_err();
    let keys: Vec<String> = err.problems().into_iter().map(|p| p.key).collect();
    for k in [
        "sites[name=blog].hooks.timeout_secs",
        "sites[name=blog].hooks.after",
        "sites[name=blog].database.socket",
        "sites[name=blog].database.password",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
    }
    assert!(!err.to_string().contains("pw-only"), "{err}");
}

#[test]
fn schedules_take_five_or_six_fields() {
    use crate::schedule::Schedule;
    assert!(Schedule::parse("0 30 8 * * *").is_ok());
    assert!(Schedule::parse("30 8 * * *").is_ok());
    assert!(Schedule::parse("8 * * *").is_err());
    assert!(Schedule::parse("0 61 8 * * *").is_err());
}

#[test]
fn toml_syntax_errors_do_not_quote_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[[servers]]\nid = 1\nsecret_key = \"wJalrXUtnFEMI-do-not-print\nbucket = \"b\"\n",
    )
    .unwrap();
    let err = read_toml(Some(&path), &BTreeMap::new()).expect_err("a syntax error");
    let text = err.to_string();
    assert!(!text.contains("do-not-print"), "{text}");
    assert!(text.contains("line 3"), "the position is kept: {text}");
}

#[test]
fn a_master_only_file_is_valid_for_master_commands_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.toml");
    std::fs::write(
        &path,
        "[master_server]\nlisten = \"127.0.0.1:8701\"\nstate_dir = \"/srv/master\"\nlease_ttl_secs = 30\n",
    )
    .unwrap();
    let empty = BTreeMap::new();
    let (raw, _) = read_toml(Some(&path), &empty).unwrap();
    let master = super::master::build_master(raw.master_server.clone(), &empty).unwrap();
    assert_eq!(master.listen.port(), 8701);
    assert_eq!(master.key_file, PathBuf::from("/srv/master/fernet.key"));
    assert_eq!(master.lease_ttl_secs, 30);
    // The node's loader still wants servers: the same file is not a node config.
    let err = build(raw, &empty).unwrap_err().to_string();
    assert!(err.contains("No S3 servers configured"), "{err}");
    // A typo inside the table is reported, not ignored.
    std::fs::write(&path, "[master_server]\nlisten_addr = \"x\"\n").unwrap();
    let err = read_toml(Some(&path), &empty).unwrap_err().to_string();
    assert!(err.contains("listen_addr"), "{err}");
}

#[test]
fn idle_timeout_defaults_validates_and_env_wins() {
    let cfg = build(RawConfig::default(), &with_host(env_of(&[(1, "one")]))).unwrap();
    assert_eq!(cfg.network.idle_timeout_secs, DEFAULT_IDLE_TIMEOUT_SECS);
    assert_eq!(cfg.redacted().network.idle_timeout_secs, 60);

    let raw = || toml("[network]\nidle_timeout_secs = 3\n");
    let cfg = build(raw(), &with_host(env_of(&[(1, "one")]))).unwrap();
    assert_eq!(cfg.network.idle_timeout(), std::time::Duration::from_secs(3));
    let mut e = with_host(env_of(&[(1, "one")]));
    e.insert("SITEBACKUP_IDLE_TIMEOUT_SECS".into(), "7".into());
    assert_eq!(build(raw(), &e).unwrap().network.idle_timeout_secs, 7);

    for (toml_value, env_value, needle) in [
        ("0", None, "between 1 and 3600"),
        ("3601", None, "between 1 and 3600"),
        ("5", Some("soon"), "whole number of seconds"),
    ] {
        let raw = toml(&format!("[network]\nidle_timeout_secs = {toml_value}\n"));
        let mut e = with_host(env_of(&[(1, "one")]));
        if let Some(v) = env_value {
            e.insert("SITEBACKUP_IDLE_TIMEOUT_SECS".into(), v.into());
        }
        let err = build(raw, &e).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.key, "network.idle_timeout_secs");
        assert_eq!(p.env.as_deref(), Some("SITEBACKUP_IDLE_TIMEOUT_SECS"));
        assert!(p.message.contains(needle), "{p}");
    }
}

#[test]
fn suspect_below_percent_defaults_to_10_and_is_validated() {
    let cfg = build(RawConfig::default(), &with_host(env_of(&[(1, "one")]))).unwrap();
    assert_eq!(cfg.upload.suspect_below_percent, 10);
    let cfg = build(
        toml("[upload]\nsuspect_below_percent = 0\n"),
        &with_host(env_of(&[(1, "one")])),
    )
    .unwrap();
    assert_eq!(cfg.upload.suspect_below_percent, 0, "0 turns the size check off");
    let mut e = with_host(env_of(&[(1, "one")]));
    e.insert("SITEBACKUP_SUSPECT_BELOW_PERCENT".into(), "25".into());
    let cfg = build(toml("[upload]\nsuspect_below_percent = 5\n"), &e).unwrap();
    assert_eq!(cfg.upload.suspect_below_percent, 25, "env wins");

    for (toml_text, env_value, found) in [
        ("[upload]\nsuspect_below_percent = 101\n", None, "found 101"),
        ("", Some("ten"), "\"ten\""),
    ] {
        let mut e = with_host(env_of(&[(1, "one")]));
        if let Some(v) = env_value {
            e.insert("SITEBACKUP_SUSPECT_BELOW_PERCENT".into(), v.into());
        }
        let err = build(toml(toml_text), &e).unwrap_err();
        let p = err
            .problems()
            .into_iter()
            .find(|p| p.key == "upload.suspect_below_percent")
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!(p.env.as_deref(), Some("SITEBACKUP_SUSPECT_BELOW_PERCENT"));
        assert!(p.message.contains(found), "{p}");
    }
}

#[test]
fn debug_of_a_whole_config_shows_no_secret() {
    let text = r#"
        [[servers]]
        id = 1
        endpoint = "s3.example.com"
        region = "eu-west-3"
        bucket = "backups"
        access_key = "AKIATOMLACCESSKEY1"
        secret_key = "toml-secret-key-do-not-print"
        session_token = "toml-session-token-do-not-print"

        [[sites]]
        name = "blog"
        path = "/tmp"
        [sites.database]
        name = "wp_blog"
        user = "blog"
        password = "db-password-do-not-print"
        [sites.hooks]
        before = ["curl -H 'Authorization: Bearer hook-token-do-not-print' https://ops.example/start"]
        after = ["notify --token=after-token-do-not-print"]
        on_error = ["notify --token=error-token-do-not-print"]
        "#;
    let mut e = with_host(s3_env(2, "two").into_iter().collect());
    e.insert(
        "S3_SERVER_2_SESSION_TOKEN".into(),
        "env-session-token-do-not-print".into(),
    );
    let raw = toml(text);
    let raw_debug = format!("{raw:?}");
    let cfg = build(raw, &e).unwrap();
    assert!(matches!(&cfg.servers[0].kind, ServerKind::S3(s) if s.session_token.is_some()));
    assert!(matches!(&cfg.servers[1].kind, ServerKind::S3(s) if s.session_token.is_some()));
    let debug = format!("{cfg:?} {:#?}", cfg);
    for shown in [&debug, &raw_debug] {
        for secret in [
            "AKIATOMLACCESSKEY1",
            "toml-secret-key",
            "toml-session-token",
            "env-session-token",
            "SECRET-2-do-not-print",
            "AKIA2EXAMPLEKEY",
            "db-password",
            "hook-token",
            "after-token",
            "error-token",
            "curl",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

#[test]
fn a_duplicate_key_or_table_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let empty = BTreeMap::new();
    for (text, key) in [
        ("host_id = \"a\"\nhost_id = \"secret-value\"\n", "host_id"),
        ("[upload]\nconcurrency = 2\n[upload]\n", "upload"),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = read_toml(Some(&path), &empty).unwrap_err().to_string();
        assert!(err.contains(&format!("the key `{key}` is set twice")), "{err}");
        assert!(!err.contains("secret-value"), "{err}");
    }
}
