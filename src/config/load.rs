//! Gathering the sources: the dotenv file, the TOML file and the process
//! environment. Validation is [`super::build`].

use super::envfile::load_env_file;
use super::master::{MasterServerConfig, build_master};
use super::{Config, ConfigError, DEFAULT_CONFIG_PATH, RawConfig, build};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where to load from. `None` fields fall back to the documented defaults.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    pub config_path: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
}

/// Load the env file (see [`super::envfile`]), read the TOML file and the
/// environment, and validate.
pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
    load_env_file(opts.env_file.as_deref())?;
    load_without_env_file(opts)
}

/// The `[master_server]` settings alone: what the `master` commands need.
/// The servers and sites of a node are neither required nor validated.
pub fn load_master(opts: &LoadOptions) -> Result<MasterServerConfig, ConfigError> {
    let env: BTreeMap<String, String> = super::envfile::environment();
    let (raw, _) = read_toml(opts.config_path.as_deref(), &env)?;
    build_master(raw.master_server, &env).map_err(ConfigError::Invalid)
}

/// Only the state directory: what reading the catalog needs (`list`), so
/// that a broken server or site entry does not hide the archives.
pub fn load_state_dir(opts: &LoadOptions) -> Result<PathBuf, ConfigError> {
    let env: BTreeMap<String, String> = super::envfile::environment();
    let (raw, _) = read_toml(opts.config_path.as_deref(), &env)?;
    Ok(super::validate::state_dir_of(raw.state_dir, &env))
}

/// Nothing is configured yet: no server and no site in the TOML file (or
/// no file), no `S3_SERVER_*` variable, and not a node. A file that cannot
/// be read or parsed is not "unconfigured": it is an error to show.
pub fn is_unconfigured(opts: &LoadOptions) -> bool {
    let env: BTreeMap<String, String> = super::envfile::environment();
    let Ok((raw, _)) = read_toml(opts.config_path.as_deref(), &env) else {
        return false;
    };
    raw.servers.is_empty()
        && raw.sites.is_empty()
        && raw.master.is_none()
        && !env
            .keys()
            .any(|k| k.starts_with("S3_SERVER_") || k == "SITEBACKUP_MODE")
}

/// Re-read the TOML file against the environment (the process's, over the
/// env file read at start), without reading the env file again: for
/// SIGHUP, as systemd's `EnvironmentFile=` is only read at start too.
pub fn load_without_env_file(opts: &LoadOptions) -> Result<Config, ConfigError> {
    let env: BTreeMap<String, String> = super::envfile::environment();
    let (raw, source) = read_toml(opts.config_path.as_deref(), &env)?;
    let mut config = build(raw, &env).map_err(|e| match (e, &source) {
        // Nothing was read from a file: say so first, as the problems
        // that follow ("No S3 servers configured") stem from it.
        (ConfigError::Invalid(mut problems), None) => {
            problems.insert(0, no_config_file());
            ConfigError::Invalid(problems)
        }
        (e, _) => e,
    })?;
    config.source = source;
    Ok(config)
}

fn no_config_file() -> super::Problem {
    super::problem::problem(
        "config",
        Some("SITEBACKUP_CONFIG".into()),
        format!(
            "no config file: {DEFAULT_CONFIG_PATH} (the default) does not exist, so only the environment was read; \
             write it (see config.example.toml, or run `sitebackup configure`), or name another with --config"
        ),
    )
}

pub(super) fn read_toml(
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<(RawConfig, Option<PathBuf>), ConfigError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match env.get("SITEBACKUP_CONFIG") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        },
    };
    if !path.exists() {
        if required {
            return Err(ConfigError::File {
                path,
                message: "no such file".into(),
            });
        }
        return Ok((RawConfig::default(), None));
    }
    let value = config::Config::builder()
        .add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<toml::Value>())
        .map_err(|e| ConfigError::File {
            path: path.clone(),
            message: name_duplicate_key(scrub_parse_error(&e.to_string()), &path),
        })?;
    let raw = super::shape::deserialize(value).map_err(ConfigError::Invalid)?;
    Ok((raw, Some(path)))
}

/// The TOML parser says only "duplicate key" and where: name the key,
/// read from that position of the file (a key, never a value).
fn name_duplicate_key(message: String, path: &Path) -> String {
    if !message.contains("duplicate key") {
        return message;
    }
    let number_after = |label: &str| -> Option<usize> {
        let rest = &message[message.find(label)? + label.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let (Some(line), Some(column)) = (number_after("line "), number_after("column ")) else {
        return message;
    };
    let key = std::fs::read_to_string(path).ok().and_then(|text| {
        let source = text.lines().nth(line.checked_sub(1)?)?;
        let from = source.char_indices().nth(column.checked_sub(1)?)?.0;
        let key: String = source[from..]
            .trim_start_matches(['[', ' '])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect();
        (!key.is_empty()).then_some(key)
    });
    match key {
        Some(key) => format!("{message} (the key `{key}` is set twice)"),
        None => message,
    }
}

/// TOML parse errors quote the offending source line, which may hold a
/// secret (`secret_key = "…` with a missing quote). Keep the position and
/// the message, drop every quoted source line.
fn scrub_parse_error(message: &str) -> String {
    message
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            let quoted = t
                .split_once('|')
                .is_some_and(|(lead, _)| lead.trim().chars().all(|c| c.is_ascii_digit()));
            !quoted && !t.is_empty()
        })
        .collect::<Vec<_>>()
        .join(" ")
}
