//! `mode = "node"` and its `[master]` table: a node gets its storage
//! credentials from a master, so its own `[[servers]]` and
//! `S3_SERVER_N_*` are ignored, with one warning. Env overrides use the
//! prefix `SITEBACKUP_MASTER_*` (the master's own settings use
//! `SITEBACKUP_MASTER_SERVER_*`, see `master.rs`).

use super::problem::{Problem, Setting, problem, seconds};
use super::{Secret, read_secret_file};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default interval of the node's sync with the master.
pub const DEFAULT_SYNC_INTERVAL_SECS: u64 = 300;
/// Default time a backup keeps retrying an unreachable master.
pub const DEFAULT_MASTER_RETRY_SECS: u64 = 120;

/// Serde mirror of `[master]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaster {
    pub url: Option<String>,
    pub node_uuid: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub sync_interval_secs: Option<u64>,
    pub retry_secs: Option<u64>,
}

/// Where archives and credentials come from.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The configured servers (`[[servers]]`, `S3_SERVER_N_*`).
    Standalone,
    /// A master's leases.
    Node(NodeConfig),
}

/// The validated `[master]` table.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The master's base URL, e.g. `https://master.example:8700`.
    pub url: url::Url,
    pub node_uuid: String,
    /// The node's bearer token, read from `token_file` (never world-readable).
    pub token: Secret,
    pub token_file: PathBuf,
    /// A PEM CA bundle to trust for the master (a private CA).
    pub ca_file: Option<PathBuf>,
    pub sync_interval_secs: u64,
    /// How long a backup retries an unreachable master before it fails.
    pub retry_secs: u64,
}

const PREFIX: &str = "SITEBACKUP_MASTER_";

/// Validate `mode` and `[master]`; every problem is collected.
pub fn build_mode(
    mode: Option<String>,
    raw: Option<RawMaster>,
    env: &BTreeMap<String, String>,
) -> Result<Mode, Vec<Problem>> {
    let mode = env.get("SITEBACKUP_MODE").cloned().or(mode);
    match mode.as_deref().map(str::trim) {
        None | Some("standalone") => return Ok(Mode::Standalone),
        Some("node") => {}
        Some(other) => {
            return Err(vec![problem(
                "mode",
                Some("SITEBACKUP_MODE".into()),
                format!("unknown mode {other:?}; expected \"standalone\" or \"node\""),
            )]);
        }
    }
    let raw = raw.unwrap_or_default();
    let mut problems = Vec::new();
    let var = |name: &str| env.get(&format!("{PREFIX}{name}")).cloned();
    let key = |name: &str| format!("master.{name}");
    let env_name = |name: &str| Some(format!("{PREFIX}{}", name.to_ascii_uppercase()));
    let mut required = |name: &str, toml: Option<String>| -> Option<String> {
        match var(&name.to_ascii_uppercase()).or(toml) {
            Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            _ => {
                problems.push(problem(key(name), env_name(name), "missing (required in node mode)"));
                None
            }
        }
    };
    let url = required("url", raw.url);
    let node_uuid = required("node_uuid", raw.node_uuid);
    let token_file = required("token_file", raw.token_file.map(|p| p.display().to_string())).map(PathBuf::from);
    let url = url.and_then(|u| match url::Url::parse(&u) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => Some(parsed),
        _ => {
            problems.push(problem(
                key("url"),
                env_name("url"),
                format!("{u:?} is not a URL such as \"https://master.example:8700\""),
            ));
            None
        }
    });
    if let Some(u) = &url
        && u.scheme() == "http"
        && !u.host_str().is_some_and(is_loopback)
    {
        problems.push(problem(
            key("url"),
            env_name("url"),
            "the master hands out storage credentials: use https:// (plain http only to a loopback address)",
        ));
    }
    if let Some(id) = &node_uuid
        && !crate::layout::is_uuid(id)
    {
        problems.push(problem(
            key("node_uuid"),
            env_name("node_uuid"),
            format!("{id:?} is not a UUID (as `sitebackup master node add` prints it)"),
        ));
    }
    let token = token_file.as_ref().and_then(|f| match read_secret_file(f) {
        Ok(t) => Some(t),
        Err(msg) => {
            problems.push(problem(key("token_file"), env_name("token_file"), msg));
            None
        }
    });
    let ca_file = var("CA_FILE").map(PathBuf::from).or(raw.ca_file);
    if let Some(ca) = &ca_file
        && !ca.is_file()
    {
        problems.push(problem(
            key("ca_file"),
            env_name("ca_file"),
            format!("{} is not a readable file", ca.display()),
        ));
    }
    let mut secs = |name: &str, toml: Option<u64>, default: u64, max: u64| -> u64 {
        let setting = Setting {
            key: key(name),
            env: env_name(name),
            env_value: var(&name.to_ascii_uppercase()),
        };
        seconds(setting, toml, default, max, &mut problems)
    };
    let sync_interval_secs = secs(
        "sync_interval_secs",
        raw.sync_interval_secs,
        DEFAULT_SYNC_INTERVAL_SECS,
        86_400,
    );
    let retry_secs = secs("retry_secs", raw.retry_secs, DEFAULT_MASTER_RETRY_SECS, 86_400);
    match (url, node_uuid, token, token_file) {
        (Some(url), Some(node_uuid), Some(token), Some(token_file)) if problems.is_empty() => {
            Ok(Mode::Node(NodeConfig {
                url,
                node_uuid,
                token,
                token_file,
                ca_file,
                sync_interval_secs,
                retry_secs,
            }))
        }
        _ => Err(problems),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn standalone_is_the_default() {
        assert!(matches!(build_mode(None, None, &env(&[])), Ok(Mode::Standalone)));
        let err = build_mode(Some("nodes".into()), None, &env(&[])).unwrap_err();
        assert_eq!(err[0].key, "mode");
    }

    #[test]
    fn node_mode_needs_a_master_and_a_private_token() {
        let problems = build_mode(Some("node".into()), None, &env(&[])).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["master.url", "master.node_uuid", "master.token_file"]);

        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-secret-value\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let raw = RawMaster {
            url: Some("http://master.example:8700".into()),
            node_uuid: Some("3d298266-633b-48b6-9662-07a1d9ee1c44".into()),
            token_file: Some(token.clone()),
            ..Default::default()
        };
        let problems = build_mode(Some("node".into()), Some(raw.clone()), &env(&[])).unwrap_err();
        let text = format!("{problems:?}");
        assert!(
            text.contains("use https://") && text.contains("world-readable"),
            "{text}"
        );
        assert!(!text.contains("tok-secret-value"));

        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ok = build_mode(
            Some("node".into()),
            Some(raw),
            &env(&[
                ("SITEBACKUP_MASTER_URL", "http://127.0.0.1:8700"),
                ("SITEBACKUP_MASTER_SYNC_INTERVAL_SECS", "30"),
            ]),
        )
        .unwrap();
        let Mode::Node(node) = ok else { panic!("node mode") };
        assert_eq!(node.url.as_str(), "http://127.0.0.1:8700/");
        assert_eq!(node.token.expose(), "tok-secret-value");
        assert_eq!(
            (node.sync_interval_secs, node.retry_secs),
            (30, DEFAULT_MASTER_RETRY_SECS)
        );
    }
}
