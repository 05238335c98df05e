//! `config check`: validate, then print the effective config as a TOML
//! file (secrets redacted) headed by where the settings came from. With
//! `-q`, only problems are printed (the unit's `ExecStartPre`).

use crate::EXIT_CONFIG;
use crate::config::{Config, ConfigError, EnvSources};
use std::fmt::Write as _;

pub fn run(loaded: Result<Config, ConfigError>, json: bool, quiet: bool) -> u8 {
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return super::report_config_error(&e, json),
    };
    let sources = crate::config::env_sources();
    let redacted = config.redacted();
    if json {
        super::print_json(&serde_json::json!({
            "valid": true,
            "warnings": config.warnings,
            "sources": { "config_file": config.source, "env": sources },
            "config": redacted,
        }));
        return 0;
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if quiet {
        return 0;
    }
    match toml::to_string(&redacted) {
        Ok(text) => {
            print!("{}{text}", header(&config, &sources));
            0
        }
        Err(e) => {
            eprintln!("error: cannot render the configuration: {e}");
            EXIT_CONFIG
        }
    }
}

/// `config check --systemd-condition`, the unit's `ExecCondition=`: a
/// host where nothing is configured yet (the package's commented-out
/// files) skips the unit at boot instead of failing it five times; an
/// invalid configuration still fails it, with every problem in the journal.
pub fn condition(loaded: Result<Config, ConfigError>, unconfigured: bool) -> u8 {
    /// systemd: 1..=254 skips the unit, 255 fails it.
    const SKIP: u8 = 1;
    const FAIL: u8 = 255;
    match loaded {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            0
        }
        Err(_) if unconfigured => {
            eprintln!(
                "sitebackup is not configured yet (no server, no site): not starting. \
                 Configure it (`sitebackup configure`, or {} and {}), then `systemctl start sitebackup`.",
                crate::config::DEFAULT_CONFIG_PATH,
                crate::config::PACKAGED_ENV_FILE
            );
            SKIP
        }
        Err(e) => {
            eprintln!("error: {e}");
            FAIL
        }
    }
}

/// TOML comments: the files read and the variables that came from the
/// environment (names only).
fn header(config: &Config, sources: &EnvSources) -> String {
    let mut out = String::from("# The configuration is valid.\n");
    let _ = match &config.source {
        Some(path) => writeln!(out, "# Config file: {}", path.display()),
        None => writeln!(
            out,
            "# Config file: none ({} does not exist)",
            crate::config::DEFAULT_CONFIG_PATH
        ),
    };
    let _ = match &sources.env_file {
        Some(path) => writeln!(out, "# Env file: {}", path.display()),
        None => writeln!(out, "# Env file: none"),
    };
    for (label, names) in [
        ("From the env file", &sources.from_env_file),
        ("From the process environment", &sources.from_environment),
    ] {
        if !names.is_empty() {
            let _ = writeln!(out, "# {label} (they win over the TOML): {}", names.join(", "));
        }
    }
    let _ = writeln!(
        out,
        "# Effective settings; secrets read {:?}: put the real values back to load this file.\n",
        crate::config::REDACTED
    );
    out
}
