//! Bounded fuzzing of the configuration loader (a proptest run inside the
//! normal test suite): TOML text assembled from the real keys with values
//! of every type, and environment maps over the real variable names with
//! hostile values, through the TOML mirror and [`build`]. Nothing panics,
//! and no problem quotes a secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const SECRET: &str = "sk-Fz9-never-in-errors";

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("5".to_string()),
        Just("9223372036854775807".to_string()),
        Just("0.5".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("1e309".to_string()),
        Just("true".to_string()),
        Just("\"\"".to_string()),
        Just("\"/tmp\"".to_string()),
        Just("\"relative/dir\"".to_string()),
        Just("\"/nonexistent/sb-fuzz\"".to_string()),
        Just("\"local\"".to_string()),
        Just("\"node\"".to_string()),
        Just("\"http://127.0.0.1:1\"".to_string()),
        Just("\"s3.amazonaws.com\"".to_string()),
        Just("\"0 30 8 * * *\"".to_string()),
        Just("\"30d\"".to_string()),
        Just("[\"a/**\", \"[\"]".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        "\"[ -~]{0,16}\"".prop_map(|s| s.replace('\\', "")),
    ]
}

fn toml_text() -> impl Strategy<Value = String> {
    let section = prop_oneof![
        Just(""),
        Just("[upload]"),
        Just("[daemon]"),
        Just("[network]"),
        Just("[restore]"),
        Just("[[servers]]"),
        Just("[[sites]]"),
        Just("[sites.database]"),
        Just("[sites.retention]"),
        Just("[sites.hooks]"),
        Just("[master]"),
        Just("[master_server]"),
    ];
    let key = prop_oneof![
        Just("host_id"),
        Just("state_dir"),
        Just("timezone"),
        Just("mode"),
        Just("id"),
        Just("type"),
        Just("endpoint"),
        Just("region"),
        Just("bucket"),
        Just("access_key"),
        Just("secret_key"),
        Just("secret_key_file"),
        Just("session_token"),
        Just("storage_limit_gb"),
        Just("path_style"),
        Just("path"),
        Just("name"),
        Just("schedule"),
        Just("exclude"),
        Just("enabled"),
        Just("user"),
        Just("password"),
        Just("host"),
        Just("port"),
        Just("socket"),
        Just("keep_last"),
        Just("keep_within"),
        Just("before"),
        Just("timeout_secs"),
        Just("part_size_mb"),
        Just("concurrency"),
        Just("zstd_level"),
        Just("drain_timeout_secs"),
        Just("idle_timeout_secs"),
        Just("max_entries"),
        Just("max_size_gb"),
        Just("keep_free_mb"),
        Just("url"),
        Just("token_file"),
    ];
    let line = (section, proptest::collection::vec((key, value()), 0..4));
    proptest::collection::vec(line, 0..8).prop_map(|blocks| {
        let mut text = String::new();
        for (section, pairs) in blocks {
            text.push_str(section);
            text.push('\n');
            for (k, v) in pairs {
                // Secret keys hold the marker (as a string or in a list),
                // so a problem that quotes them is a leak.
                let v = match k {
                    "access_key" | "secret_key" | "session_token" | "password" => format!("\"{SECRET}\""),
                    "before" => format!("[\"{SECRET}\"]"),
                    _ => v,
                };
                text.push_str(&format!("{k} = {v}\n"));
            }
        }
        text
    })
}

fn env_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    let name = prop_oneof![
        (
            0u32..4,
            prop_oneof![
                Just("ENDPOINT"),
                Just("REGION"),
                Just("BUCKET"),
                Just("ACCESS_KEY"),
                Just("SECRET_KEY"),
                Just("SECRET_KEY_FILE"),
                Just("SESSION_TOKEN"),
                Just("STORAGE_LIMIT_GB"),
                Just("PATH_STYLE"),
                Just("TYPE"),
                Just("PATH"),
                Just("BOGUS"),
            ]
        )
            .prop_map(|(n, f)| format!("S3_SERVER_{n}_{f}")),
        Just("S3_SERVER_x_ENDPOINT".to_string()),
        Just("S3_SERVER_99999999999_REGION".to_string()),
        prop_oneof![
            Just("HOST_ID"),
            Just("STATE_DIR"),
            Just("TIMEZONE"),
            Just("PART_SIZE_MB"),
            Just("UPLOAD_CONCURRENCY"),
            Just("QUEUE_DEPTH"),
            Just("ZSTD_LEVEL"),
            Just("ZSTD_THREADS"),
            Just("PART_RETRIES"),
            Just("SIZE_MARGIN_PERCENT"),
            Just("SUSPECT_BELOW_PERCENT"),
            Just("DRAIN_TIMEOUT_SECS"),
            Just("CATCH_UP"),
            Just("IDLE_TIMEOUT_SECS"),
            Just("RESTORE_MAX_ENTRIES"),
            Just("RESTORE_MAX_SIZE_GB"),
            Just("RESTORE_KEEP_FREE_MB"),
            Just("MODE"),
            Just("MASTER_URL"),
            Just("MASTER_NODE_UUID"),
        ]
        .prop_map(|k| format!("SITEBACKUP_{k}")),
    ];
    let val = value().prop_map(|v| v.trim_matches('"').to_string());
    proptest::collection::btree_map(name, val, 0..12).prop_map(|mut env| {
        for (k, v) in env.iter_mut() {
            if k.ends_with("_ACCESS_KEY") || k.ends_with("_SECRET_KEY") || k.ends_with("_SESSION_TOKEN") {
                *v = SECRET.to_string();
            }
        }
        env
    })
}

fn parse(text: &str) -> Option<RawConfig> {
    ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn toml_and_env_never_panic_nor_leak(text in toml_text(), env in env_map()) {
        let raw = parse(&text).unwrap_or_default();
        if let Err(e) = build(raw, &env) {
            let shown = format!("{e} {:?}", e.problems());
            prop_assert!(!shown.contains(SECRET), "{}", shown);
        }
    }
}
