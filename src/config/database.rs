//! `[sites.database]`, validated into a [`DatabaseConfig`]. Where the
//! remaining settings come from (`wp-config.php`) and the dump itself live
//! in [`crate::database`].

use super::{RawDatabase, Secret, read_secret_file};
use std::path::PathBuf;

/// A site's `[sites.database]` table. Fields left out are read from the
/// site's `wp-config.php` when the dump runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `enabled = false` turns the dump off.
    pub enabled: bool,
    pub name: Option<String>,
    pub user: Option<String>,
    /// From `password` or `password_file` (read at load time).
    pub password: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    /// Longest a dump may run; then its process group is killed and the
    /// run fails.
    pub timeout_secs: u64,
}

/// Default time limit of a database dump: an hour.
pub const DEFAULT_DUMP_TIMEOUT_SECS: u64 = 3600;
/// Longest allowed dump time limit: a day.
pub const MAX_DUMP_TIMEOUT_SECS: u64 = 86_400;

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            name: None,
            user: None,
            password: None,
            host: None,
            port: None,
            socket: None,
            timeout_secs: DEFAULT_DUMP_TIMEOUT_SECS,
        }
    }
}

impl DatabaseConfig {
    /// Validate the raw table; every problem is `(key suffix, message)`.
    pub fn from_raw(raw: RawDatabase) -> Result<Self, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let password = match (raw.password, &raw.password_file) {
            (Some(_), Some(_)) => {
                problems.push((
                    "database.password",
                    "set either password or password_file, not both".to_string(),
                ));
                None
            }
            (Some(p), None) => Some(p),
            (None, Some(file)) => match read_secret_file(file) {
                Ok(s) => Some(s),
                Err(msg) => {
                    problems.push(("database.password_file", msg));
                    None
                }
            },
            (None, None) => None,
        };
        if raw.socket.is_some() && (raw.host.is_some() || raw.port.is_some()) {
            problems.push(("database.socket", "set either socket or host/port, not both".into()));
        }
        if let Some(name) = &raw.name
            && let Err(e) = check_db_name(name)
        {
            problems.push(("database.name", e));
        }
        let timeout_secs = raw.timeout_secs.unwrap_or(DEFAULT_DUMP_TIMEOUT_SECS);
        if !(1..=MAX_DUMP_TIMEOUT_SECS).contains(&timeout_secs) {
            problems.push((
                "database.timeout_secs",
                format!("must be between 1 and {MAX_DUMP_TIMEOUT_SECS} seconds, found {timeout_secs}"),
            ));
        }
        if password.is_some() && raw.user.is_none() {
            problems.push((
                "database.password",
                "a password needs a user: set database.user too (without it, user and password come from wp-config.php)"
                    .into(),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            enabled: raw.enabled.unwrap_or(true),
            name: raw.name,
            user: raw.user,
            password,
            host: raw.host,
            port: raw.port,
            socket: raw.socket,
            timeout_secs,
        })
    }
}

/// A database name becomes the archive entry `database/{name}.sql`.
pub fn check_db_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.len() > 64 || name.contains(['/', '\\', '\0']) {
        return Err(format!(
            "{name:?} is not a usable database name (1 to 64 characters, no '/', '\\' or NUL)"
        ));
    }
    Ok(())
}
