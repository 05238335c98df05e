//! The numeric settings of `[upload]`, `[network]` and `[restore]`: each
//! from its env var, else the TOML key, else the default, checked against
//! its range.

use super::model::MIB;
use super::problem::{Problem, problem};
use super::*;
use std::collections::BTreeMap;

pub(super) fn build_upload(
    raw: &raw::RawUpload,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> UploadConfig {
    let mut u = UploadConfig::default();
    let mut num = |toml_key: &str, env_key: &str, toml: Option<u64>, min: u64, max: u64| -> Option<u64> {
        let (value, from_env) = match env.get(env_key) {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => (Some(n), true),
                Err(_) => {
                    problems.push(problem(
                        format!("upload.{toml_key}"),
                        Some(env_key.into()),
                        format!("expected a whole number, found {v:?}"),
                    ));
                    return None;
                }
            },
            None => (toml, false),
        };
        let v = value?;
        if v < min || v > max {
            let _ = from_env;
            problems.push(problem(
                format!("upload.{toml_key}"),
                Some(env_key.into()),
                format!("must be between {min} and {max}, found {v}"),
            ));
            return None;
        }
        Some(v)
    };
    if let Some(v) = num("part_size_mb", "SITEBACKUP_PART_SIZE_MB", raw.part_size_mb, 5, 5 * 1024) {
        u.part_size = v * MIB;
    }
    if let Some(v) = num(
        "concurrency",
        "SITEBACKUP_UPLOAD_CONCURRENCY",
        raw.concurrency.map(|v| v as u64),
        1,
        64,
    ) {
        u.concurrency = v as usize;
    }
    if let Some(v) = num(
        "queue_depth",
        "SITEBACKUP_QUEUE_DEPTH",
        raw.queue_depth.map(|v| v as u64),
        1,
        64,
    ) {
        u.queue_depth = v as usize;
    }
    if let Some(v) = num(
        "zstd_level",
        "SITEBACKUP_ZSTD_LEVEL",
        raw.zstd_level.map(|v| v.max(0) as u64),
        1,
        19,
    ) {
        u.zstd_level = v as i32;
    }
    if let Some(v) = num(
        "zstd_threads",
        "SITEBACKUP_ZSTD_THREADS",
        raw.zstd_threads.map(u64::from),
        0,
        256,
    ) {
        u.zstd_threads = v as u32;
    }
    if let Some(v) = num(
        "part_retries",
        "SITEBACKUP_PART_RETRIES",
        raw.part_retries.map(u64::from),
        0,
        20,
    ) {
        u.part_retries = v as u32;
    }
    if let Some(v) = num(
        "size_margin_percent",
        "SITEBACKUP_SIZE_MARGIN_PERCENT",
        raw.size_margin_percent,
        0,
        1000,
    ) {
        u.size_margin_percent = v;
    }
    if let Some(v) = num(
        "suspect_below_percent",
        "SITEBACKUP_SUSPECT_BELOW_PERCENT",
        raw.suspect_below_percent,
        0,
        100,
    ) {
        u.suspect_below_percent = v;
    }
    u
}

pub(super) fn build_network(
    raw: &raw::RawNetwork,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> NetworkConfig {
    const KEY: &str = "network.idle_timeout_secs";
    const ENV: &str = "SITEBACKUP_IDLE_TIMEOUT_SECS";
    let mut n = NetworkConfig::default();
    let value = match env.get(ENV) {
        Some(v) => match v.trim().parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                problems.push(problem(
                    KEY,
                    Some(ENV.into()),
                    format!("expected a whole number of seconds, found {v:?}"),
                ));
                None
            }
        },
        None => raw.idle_timeout_secs,
    };
    match value {
        Some(v) if (1..=MAX_IDLE_TIMEOUT_SECS).contains(&v) => n.idle_timeout_secs = v,
        Some(v) => problems.push(problem(
            KEY,
            Some(ENV.into()),
            format!("must be between 1 and {MAX_IDLE_TIMEOUT_SECS} seconds, found {v}"),
        )),
        None => {}
    }
    n
}

pub(super) fn build_restore(
    raw: &raw::RawRestore,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> RestoreConfig {
    let mut r = RestoreConfig::default();
    let mut whole = |key: &str, env_key: &str, toml: Option<u64>, min: u64| -> Option<u64> {
        let value = match env.get(env_key) {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    problems.push(problem(
                        format!("restore.{key}"),
                        Some(env_key.into()),
                        format!("expected a whole number, found {v:?}"),
                    ));
                    return None;
                }
            },
            None => toml?,
        };
        if value < min {
            problems.push(problem(
                format!("restore.{key}"),
                Some(env_key.into()),
                format!("must be at least {min}, found {value}"),
            ));
            return None;
        }
        Some(value)
    };
    if let Some(v) = whole("max_entries", "SITEBACKUP_RESTORE_MAX_ENTRIES", raw.max_entries, 1) {
        r.max_entries = v;
    }
    if let Some(v) = whole("keep_free_mb", "SITEBACKUP_RESTORE_KEEP_FREE_MB", raw.keep_free_mb, 0) {
        r.keep_free_mb = v;
    }
    const ENV: &str = "SITEBACKUP_RESTORE_MAX_SIZE_GB";
    let size = match env.get(ENV) {
        Some(v) => v.trim().parse::<f64>().map_err(|_| v.clone()),
        None => Ok(raw.max_size_gb.unwrap_or(r.max_size_gb)),
    };
    match size {
        Ok(gb) if gb.is_finite() && gb > 0.0 => r.max_size_gb = gb,
        Ok(gb) => problems.push(problem(
            "restore.max_size_gb",
            Some(ENV.into()),
            format!("must be a positive number of GB, found {gb}"),
        )),
        Err(v) => problems.push(problem(
            "restore.max_size_gb",
            Some(ENV.into()),
            format!("expected a number of GB such as 1000 or 0.5, found {v:?}"),
        )),
    }
    r
}
