//! The `S3_SERVER_N_*` environment variables, as the original tool spelt
//! them, and how they merge over `[[servers]]` entries.

use super::problem::{Problem, problem};
use super::{RawServer, Secret};
use std::collections::BTreeMap;

/// The fields of `S3_SERVER_N_*` and their TOML names.
const SERVER_FIELDS: &[(&str, &str)] = &[
    ("ENDPOINT", "endpoint"),
    ("REGION", "region"),
    ("BUCKET", "bucket"),
    ("ACCESS_KEY", "access_key"),
    ("ACCESS_KEY_FILE", "access_key_file"),
    ("SECRET_KEY", "secret_key"),
    ("SECRET_KEY_FILE", "secret_key_file"),
    ("SESSION_TOKEN", "session_token"),
    ("SESSION_TOKEN_FILE", "session_token_file"),
    ("STORAGE_LIMIT_GB", "storage_limit_gb"),
    ("PATH_STYLE", "path_style"),
    ("TYPE", "type"),
    ("PATH", "path"),
];

pub(super) fn server_env(id: u32, field: &str) -> String {
    format!("S3_SERVER_{id}_{field}")
}

/// Servers from `S3_SERVER_N_*`, keyed by N. Unknown suffixes and bad
/// numbers are problems (a typo must not silently drop a server).
pub(super) fn env_servers(env: &BTreeMap<String, String>, problems: &mut Vec<Problem>) -> BTreeMap<u32, RawServer> {
    let mut out: BTreeMap<u32, RawServer> = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("S3_SERVER_") else {
            continue;
        };
        let Some((num, field)) = rest.split_once('_') else {
            problems.push(problem("servers", Some(name.clone()), "expected S3_SERVER_<N>_<FIELD>"));
            continue;
        };
        let id = match num.parse::<u32>() {
            Ok(id) if id > 0 => id,
            _ => {
                problems.push(problem(
                    "servers",
                    Some(name.clone()),
                    format!("server number {num:?} is not a positive integer"),
                ));
                continue;
            }
        };
        let key = |f: &str| format!("servers[id={id}].{f}");
        let s = out.entry(id).or_default();
        match field {
            "ENDPOINT" => s.endpoint = Some(value.clone()),
            "REGION" => s.region = Some(value.clone()),
            "BUCKET" => s.bucket = Some(value.clone()),
            "ACCESS_KEY" => s.access_key = Some(Secret::new(value.clone())),
            "ACCESS_KEY_FILE" => s.access_key_file = Some(value.into()),
            "SECRET_KEY" => s.secret_key = Some(Secret::new(value.clone())),
            "SECRET_KEY_FILE" => s.secret_key_file = Some(value.into()),
            "SESSION_TOKEN" => s.session_token = Some(Secret::new(value.clone())),
            "SESSION_TOKEN_FILE" => s.session_token_file = Some(value.into()),
            "TYPE" => s.kind = Some(value.clone()),
            "PATH" => s.path = Some(value.into()),
            "STORAGE_LIMIT_GB" => match value.trim().parse::<f64>() {
                Ok(v) => s.storage_limit_gb = Some(v),
                Err(_) => problems.push(problem(
                    key("storage_limit_gb"),
                    Some(name.clone()),
                    format!("expected a number of GB such as 100 or 0.5, found {value:?}"),
                )),
            },
            "PATH_STYLE" => match parse_bool(value) {
                Some(v) => s.path_style = Some(v),
                None => problems.push(problem(
                    key("path_style"),
                    Some(name.clone()),
                    format!("expected true or false, found {value:?}"),
                )),
            },
            other => {
                let known: Vec<&str> = SERVER_FIELDS.iter().map(|(e, _)| *e).collect();
                let message = match super::shape::did_you_mean(other, known.iter().copied()) {
                    Some(best) => format!("unknown field {other:?}; did you mean {best:?}?"),
                    None => format!("unknown field {other:?}; known fields: {}", known.join(", ")),
                };
                problems.push(problem("servers", Some(name.clone()), message));
            }
        }
    }
    out
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Env wins per field. A secret and its `_file` form count as one field, so
/// an env `SECRET_KEY` replaces a TOML `secret_key_file` and vice versa.
pub(super) fn merge_server(toml: RawServer, env: RawServer) -> RawServer {
    let (access_key, access_key_file) = if env.access_key.is_some() || env.access_key_file.is_some() {
        (env.access_key, env.access_key_file)
    } else {
        (toml.access_key, toml.access_key_file)
    };
    let (secret_key, secret_key_file) = if env.secret_key.is_some() || env.secret_key_file.is_some() {
        (env.secret_key, env.secret_key_file)
    } else {
        (toml.secret_key, toml.secret_key_file)
    };
    let (session_token, session_token_file) = if env.session_token.is_some() || env.session_token_file.is_some() {
        (env.session_token, env.session_token_file)
    } else {
        (toml.session_token, toml.session_token_file)
    };
    RawServer {
        id: toml.id,
        session_token,
        session_token_file,
        kind: env.kind.or(toml.kind),
        endpoint: env.endpoint.or(toml.endpoint),
        region: env.region.or(toml.region),
        bucket: env.bucket.or(toml.bucket),
        access_key,
        access_key_file,
        secret_key,
        secret_key_file,
        storage_limit_gb: env.storage_limit_gb.or(toml.storage_limit_gb),
        path_style: env.path_style.or(toml.path_style),
        path: env.path.or(toml.path),
    }
}
