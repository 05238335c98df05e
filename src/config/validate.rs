//! Validation: raw TOML + environment → [`Config`], collecting every
//! problem before failing.

use super::env::{env_servers, merge_server, parse_bool, server_env};
use super::problem::{Problem, problem};
use super::site::build_site;
use super::tunables::{build_network, build_restore, build_upload};
use super::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Build and validate a [`Config`] from the parsed TOML and an environment
/// map. Pure apart from reading `*_file` secrets and checking site paths.
pub fn build(raw: RawConfig, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();

    let host_id = env
        .get("SITEBACKUP_HOST_ID")
        .cloned()
        .or(raw.host_id)
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    if !is_safe_name(&host_id) {
        problems.push(problem(
            "host_id",
            Some("SITEBACKUP_HOST_ID".into()),
            format!("{host_id:?} must be non-empty, use only A-Z a-z 0-9 . _ - and not start with a dot"),
        ));
    }
    let state_dir = state_dir_of(raw.state_dir, env);

    let timezone = match env.get("SITEBACKUP_TIMEZONE").cloned().or(raw.timezone) {
        None => chrono_tz::UTC,
        Some(name) => match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                problems.push(problem(
                    "timezone",
                    Some("SITEBACKUP_TIMEZONE".into()),
                    format!("unknown time zone {name:?}; use an IANA name such as \"UTC\" or \"Europe/London\""),
                ));
                chrono_tz::UTC
            }
        },
    };
    let upload = build_upload(&raw.upload, env, &mut problems);
    let mut warnings = Vec::new();
    let mode = match super::node::build_mode(raw.mode, raw.master, env) {
        Ok(mode) => mode,
        Err(found) => {
            problems.extend(found);
            Mode::Standalone
        }
    };
    let node_mode = matches!(mode, Mode::Node(_));
    let mut daemon = DaemonConfig::default();
    match env
        .get("SITEBACKUP_DRAIN_TIMEOUT_SECS")
        .map(|v| v.trim().parse::<u64>())
    {
        Some(Ok(v)) => daemon.drain_timeout_secs = v,
        Some(Err(_)) => problems.push(problem(
            "daemon.drain_timeout_secs",
            Some("SITEBACKUP_DRAIN_TIMEOUT_SECS".into()),
            "expected a whole number of seconds",
        )),
        None => {
            if let Some(v) = raw.daemon.drain_timeout_secs {
                daemon.drain_timeout_secs = v;
            }
        }
    }
    if daemon.drain_timeout_secs > MAX_DRAIN_TIMEOUT_SECS {
        problems.push(problem(
            "daemon.drain_timeout_secs",
            Some("SITEBACKUP_DRAIN_TIMEOUT_SECS".into()),
            format!(
                "must be at most {MAX_DRAIN_TIMEOUT_SECS} seconds (a day), found {}; keep it below the unit's TimeoutStopSec",
                daemon.drain_timeout_secs
            ),
        ));
    }
    match env.get("SITEBACKUP_CATCH_UP").map(|v| parse_bool(v)) {
        Some(Some(v)) => daemon.catch_up = v,
        Some(None) => problems.push(problem(
            "daemon.catch_up",
            Some("SITEBACKUP_CATCH_UP".into()),
            "expected true or false",
        )),
        None => {
            if let Some(v) = raw.daemon.catch_up {
                daemon.catch_up = v;
            }
        }
    }
    let network = build_network(&raw.network, env, &mut problems);
    let restore = build_restore(&raw.restore, env, &mut problems);

    // Servers: TOML first, then env merged over it by id.
    let mut by_id: BTreeMap<u32, RawServer> = BTreeMap::new();
    for (idx, s) in raw.servers.into_iter().enumerate() {
        match s.id {
            Some(id) if id > 0 && id <= i64::from(u32::MAX) => {
                let id = id as u32;
                if by_id.insert(id, s).is_some() {
                    problems.push(problem(
                        format!("servers[{idx}].id"),
                        None,
                        format!("id {id} is used by more than one [[servers]] entry"),
                    ));
                }
            }
            Some(id) => problems.push(problem(
                format!("servers[{idx}].id"),
                None,
                format!("must be a positive integer, found {id}"),
            )),
            None => problems.push(problem(
                format!("servers[{idx}].id"),
                None,
                "missing: every [[servers]] entry needs `id = N` (it sets the order of trial)",
            )),
        }
    }
    for (id, env_server) in env_servers(env, &mut problems) {
        let toml = by_id.remove(&id).unwrap_or_default();
        by_id.insert(id, merge_server(toml, env_server));
    }
    if node_mode && !by_id.is_empty() {
        // Seed 001: the legacy storage config is ignored in node mode.
        warnings.push(format!(
            "node mode: the {} locally configured server(s) ([[servers]], S3_SERVER_N_*) are ignored; storage comes from the master",
            by_id.len()
        ));
        by_id.clear();
    } else if by_id.is_empty() && !node_mode {
        problems.push(problem(
            "servers",
            Some("S3_SERVER_1_ENDPOINT".into()),
            "No S3 servers configured: set S3_SERVER_1_ENDPOINT (and _REGION, _ACCESS_KEY, _SECRET_KEY, _BUCKET) or add a [[servers]] entry",
        ));
    }
    let servers: Vec<ServerConfig> = by_id
        .into_iter()
        .filter_map(|(id, raw)| build_server(id, raw, &mut problems))
        .collect();

    let mut sites = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (idx, s) in raw.sites.into_iter().enumerate() {
        if let Some(site) = build_site(idx, s, &mut problems, &mut warnings) {
            if !seen.insert(site.name.clone()) {
                problems.push(problem(
                    format!("sites[name={}].name", site.name),
                    None,
                    "the same site name is used twice",
                ));
            }
            sites.push(site);
        }
    }

    check_outside_sites(&state_dir, &servers, &sites, &mut problems);

    if problems.is_empty() {
        Ok(Config {
            host_id,
            state_dir,
            timezone,
            upload,
            daemon,
            network,
            restore,
            servers,
            sites,
            source: None,
            mode,
            warnings,
        })
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// The state directory and `local` targets must not lie inside a site:
/// every archive would then hold the earlier archives and the catalog.
fn check_outside_sites(state_dir: &Path, servers: &[ServerConfig], sites: &[SiteConfig], problems: &mut Vec<Problem>) {
    let within = |inner: &Path, site: &SiteConfig| normalized(inner).starts_with(normalized(&site.path));
    for site in sites {
        if within(state_dir, site) {
            problems.push(problem(
                "state_dir",
                Some("SITEBACKUP_STATE_DIR".into()),
                format!(
                    "{} is inside site {:?} ({}): its archives would contain the catalog and spool; move state_dir out of the site",
                    state_dir.display(),
                    site.name,
                    site.path.display()
                ),
            ));
        }
        for server in servers {
            if let ServerKind::Local { path } = &server.kind
                && within(path, site)
            {
                problems.push(problem(
                    format!("servers[id={}].path", server.id),
                    Some(server_env(server.id, "PATH")),
                    format!(
                        "{} is inside site {:?} ({}): each archive would contain the earlier ones; use a directory outside every site",
                        path.display(),
                        site.name,
                        site.path.display()
                    ),
                ));
            }
        }
    }
}

/// The path with symlinks resolved as far as it exists, and `.`/`..`
/// folded lexically beyond that.
fn normalized(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return lexical(&out);
        }
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return lexical(path),
        }
    }
}

fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `SITEBACKUP_STATE_DIR`, else `state_dir`, else the default.
pub(super) fn state_dir_of(toml: Option<PathBuf>, env: &BTreeMap<String, String>) -> PathBuf {
    env.get("SITEBACKUP_STATE_DIR")
        .map(PathBuf::from)
        .or(toml)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

fn build_server(id: u32, raw: RawServer, problems: &mut Vec<Problem>) -> Option<ServerConfig> {
    let key = |f: &str| format!("servers[id={id}].{f}");
    let env = |f: &str| Some(server_env(id, f));
    let before = problems.len();

    let storage_limit_gb = raw.storage_limit_gb.unwrap_or(DEFAULT_STORAGE_LIMIT_GB);
    if !(storage_limit_gb.is_finite() && storage_limit_gb > 0.0) {
        problems.push(problem(
            key("storage_limit_gb"),
            env("STORAGE_LIMIT_GB"),
            format!("must be a positive number of GB, found {storage_limit_gb}"),
        ));
    }
    let storage_limit_bytes = (storage_limit_gb * 1e9).round() as u64;

    let kind = raw.kind.as_deref().unwrap_or("s3").to_ascii_lowercase();
    let kind = match kind.as_str() {
        "local" => match raw.path {
            Some(path) if path.is_absolute() => Some(ServerKind::Local { path }),
            Some(path) => {
                problems.push(problem(
                    key("path"),
                    env("PATH"),
                    format!("must be an absolute directory path, found {}", path.display()),
                ));
                None
            }
            None => {
                problems.push(problem(
                    key("path"),
                    env("PATH"),
                    "missing: a local server needs a directory",
                ));
                None
            }
        },
        "s3" => {
            let mut required = |value: Option<String>, f: &str, e: &str| -> Option<String> {
                match value {
                    Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                    _ => {
                        problems.push(problem(key(f), env(e), "missing (required)"));
                        None
                    }
                }
            };
            let endpoint = required(raw.endpoint, "endpoint", "ENDPOINT");
            let region = required(raw.region, "region", "REGION");
            let bucket = required(raw.bucket, "bucket", "BUCKET");
            let endpoint = endpoint.and_then(|e| match Endpoint::parse(&e) {
                Ok(ep) => Some(ep),
                Err(msg) => {
                    problems.push(problem(key("endpoint"), env("ENDPOINT"), msg));
                    None
                }
            });
            if let Some(b) = &bucket
                && !(3..=63).contains(&b.len())
            {
                problems.push(problem(
                    key("bucket"),
                    env("BUCKET"),
                    "a bucket name has 3 to 63 characters",
                ));
            }
            let access_key = read_secret(
                raw.access_key,
                raw.access_key_file,
                (&key("access_key"), &server_env(id, "ACCESS_KEY")),
                problems,
            );
            let secret_key = read_secret(
                raw.secret_key,
                raw.secret_key_file,
                (&key("secret_key"), &server_env(id, "SECRET_KEY")),
                problems,
            );
            let session_token = read_optional_secret(
                raw.session_token,
                raw.session_token_file,
                (&key("session_token"), &server_env(id, "SESSION_TOKEN")),
                problems,
            );
            match (endpoint, region, bucket, access_key, secret_key, session_token) {
                (
                    Some(endpoint),
                    Some(region),
                    Some(bucket),
                    Some(access_key),
                    Some(secret_key),
                    Some(session_token),
                ) => {
                    let path_style = raw.path_style.unwrap_or(!endpoint.is_aws());
                    Some(ServerKind::S3(S3Server {
                        endpoint,
                        region,
                        bucket,
                        access_key,
                        secret_key,
                        session_token,
                        path_style,
                    }))
                }
                _ => None,
            }
        }
        other => {
            problems.push(problem(
                key("type"),
                env("TYPE"),
                format!("unknown server type {other:?}; expected \"s3\" or \"local\""),
            ));
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    kind.map(|kind| ServerConfig {
        id,
        storage_limit_bytes,
        kind,
    })
}

/// A secret given inline or through a file. The file must not be readable
/// by everyone; its trailing newline is dropped.
fn read_secret(
    inline: Option<Secret>,
    file: Option<PathBuf>,
    (key, env): (&str, &str),
    problems: &mut Vec<Problem>,
) -> Option<Secret> {
    if inline.is_none() && file.is_none() {
        problems.push(problem(
            key,
            Some(env.into()),
            format!("missing (required); {env}_FILE may name a file holding it"),
        ));
        return None;
    }
    read_optional_secret(inline, file, (key, env), problems).flatten()
}

/// An optional secret given inline or through a file: `Some(None)` when
/// neither is set, `None` after a problem.
fn read_optional_secret(
    inline: Option<Secret>,
    file: Option<PathBuf>,
    (key, env): (&str, &str),
    problems: &mut Vec<Problem>,
) -> Option<Option<Secret>> {
    match (inline, file) {
        (None, None) => Some(None),
        (Some(_), Some(_)) => {
            problems.push(problem(
                key,
                Some(env.into()),
                format!("set either {key} or {key}_file, not both"),
            ));
            None
        }
        (Some(v), None) if !v.expose().is_empty() => Some(Some(v)),
        (Some(_), None) => {
            problems.push(problem(
                key,
                Some(env.into()),
                format!("is empty; set it, or {env}_FILE to a file holding it"),
            ));
            None
        }
        (None, Some(path)) => match read_secret_file(&path) {
            Ok(s) => Some(Some(s)),
            Err(msg) => {
                problems.push(problem(format!("{key}_file"), Some(format!("{env}_FILE")), msg));
                None
            }
        },
    }
}

/// Read a secret from a file that is not world-readable.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(format!(
            "{} is world-readable (mode {mode:04o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}
