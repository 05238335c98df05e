//! `[master_server]`: the settings of `sitebackup master`. A
//! file holding only this table is a valid configuration for the `master`
//! commands; the node's servers and sites are not needed for them.
//!
//! Env overrides use the prefix `SITEBACKUP_MASTER_SERVER_*`, distinct from
//! the node's `SITEBACKUP_MASTER_*` (its `[master]` table).

use super::env::parse_bool;
use super::problem::{Problem, Setting, problem, seconds};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Default address of the master's API.
pub const DEFAULT_MASTER_LISTEN: &str = "127.0.0.1:8700";
/// Default state directory of the master (its database and key file).
pub const DEFAULT_MASTER_STATE_DIR: &str = "/var/lib/sitebackup-master";
/// Default lifetime of a credentials lease.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 60;
/// Default interval of the master's own reconciliation.
pub const DEFAULT_RECONCILE_INTERVAL_SECS: u64 = 3600;

/// Serde mirror of `[master_server]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMasterServer {
    pub listen: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_plain_http: Option<bool>,
    pub reconcile_interval_secs: Option<u64>,
    pub lease_ttl_secs: Option<u64>,
}

/// The validated `[master_server]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterServerConfig {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// The Fernet key file (default `{state_dir}/fernet.key`).
    pub key_file: PathBuf,
    /// PEM certificate chain and key; both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS proxy).
    pub allow_plain_http: bool,
    pub reconcile_interval_secs: u64,
    pub lease_ttl_secs: u64,
}

const PREFIX: &str = "SITEBACKUP_MASTER_SERVER_";

/// Validate `[master_server]` with its env overrides; every problem is
/// collected.
pub fn build_master(
    raw: Option<RawMasterServer>,
    env: &BTreeMap<String, String>,
) -> Result<MasterServerConfig, Vec<Problem>> {
    let raw = raw.unwrap_or_default();
    let mut problems = Vec::new();
    let var = |name: &str| env.get(&format!("{PREFIX}{name}")).cloned();
    let key = |name: &str| format!("master_server.{name}");
    let env_name = |name: &str| Some(format!("{PREFIX}{}", name.to_ascii_uppercase()));

    let listen_text = var("LISTEN")
        .or(raw.listen)
        .unwrap_or_else(|| DEFAULT_MASTER_LISTEN.into());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(problem(
                key("listen"),
                env_name("listen"),
                format!("{listen_text:?} is not an address and port such as \"127.0.0.1:8700\""),
            ));
            None
        }
    };
    let path = |name: &str, toml: Option<PathBuf>| var(&name.to_ascii_uppercase()).map(PathBuf::from).or(toml);
    let state_dir = path("state_dir", raw.state_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_MASTER_STATE_DIR));
    let key_file = path("key_file", raw.key_file).unwrap_or_else(|| state_dir.join("fernet.key"));
    let tls = match (path("tls_cert", raw.tls_cert), path("tls_key", raw.tls_key)) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            problems.push(problem(
                key("tls_key"),
                env_name("tls_key"),
                "tls_cert is set: set tls_key too",
            ));
            None
        }
        (None, Some(_)) => {
            problems.push(problem(
                key("tls_cert"),
                env_name("tls_cert"),
                "tls_key is set: set tls_cert too",
            ));
            None
        }
    };
    let mut flag = |name: &str, toml: Option<bool>| match var(&name.to_ascii_uppercase()) {
        Some(v) => parse_bool(&v).unwrap_or_else(|| {
            problems.push(problem(
                key(name),
                env_name(name),
                format!("expected true or false, found {v:?}"),
            ));
            false
        }),
        None => toml.unwrap_or(false),
    };
    let allow_plain_http = flag("allow_plain_http", raw.allow_plain_http);
    let mut secs = |name: &str, toml: Option<u64>, default: u64, max: u64| -> u64 {
        let setting = Setting {
            key: key(name),
            env: env_name(name),
            env_value: var(&name.to_ascii_uppercase()),
        };
        seconds(setting, toml, default, max, &mut problems)
    };
    let reconcile_interval_secs = secs(
        "reconcile_interval_secs",
        raw.reconcile_interval_secs,
        DEFAULT_RECONCILE_INTERVAL_SECS,
        7 * 86_400,
    );
    let lease_ttl_secs = secs("lease_ttl_secs", raw.lease_ttl_secs, DEFAULT_LEASE_TTL_SECS, 3600);
    if let Some(addr) = listen
        && tls.is_none()
        && !allow_plain_http
        && !addr.ip().is_loopback()
    {
        problems.push(problem(
            key("listen"),
            env_name("listen"),
            format!(
                "{addr} is not a loopback address: this API hands out storage credentials, so set tls_cert and tls_key, or allow_plain_http = true behind a TLS proxy"
            ),
        ));
    }
    match (listen, problems.is_empty()) {
        (Some(listen), true) => Ok(MasterServerConfig {
            listen,
            state_dir,
            key_file,
            tls,
            allow_plain_http,
            reconcile_interval_secs,
            lease_ttl_secs,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults() {
        let m = build_master(None, &env(&[])).unwrap();
        assert_eq!(m.listen.to_string(), DEFAULT_MASTER_LISTEN);
        assert_eq!(m.state_dir, PathBuf::from(DEFAULT_MASTER_STATE_DIR));
        assert_eq!(m.key_file, PathBuf::from(DEFAULT_MASTER_STATE_DIR).join("fernet.key"));
        assert_eq!((m.lease_ttl_secs, m.tls), (60, None));
    }

    #[test]
    fn env_wins_and_problems_are_collected() {
        let raw = RawMasterServer {
            listen: Some("127.0.0.1:9000".into()),
            lease_ttl_secs: Some(30),
            ..Default::default()
        };
        let m = build_master(
            Some(raw.clone()),
            &env(&[("SITEBACKUP_MASTER_SERVER_LEASE_TTL_SECS", "45")]),
        )
        .unwrap();
        assert_eq!((m.listen.port(), m.lease_ttl_secs), (9000, 45));
        let problems = build_master(
            Some(RawMasterServer {
                listen: Some("0.0.0.0:8700".into()),
                tls_cert: Some("/c.pem".into()),
                ..raw
            }),
            &env(&[("SITEBACKUP_MASTER_SERVER_LEASE_TTL_SECS", "0")]),
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "master_server.tls_key",
                "master_server.lease_ttl_secs",
                "master_server.listen"
            ]
        );
        assert_eq!(
            problems[1].env.as_deref(),
            Some("SITEBACKUP_MASTER_SERVER_LEASE_TTL_SECS")
        );
    }
}
