//! The site's MySQL/MariaDB database: where its settings come from, the dump
//! that goes into every archive, and the import used by `restore --with-db`.
//!
//! Settings ([`resolve`]): `[sites.database]` wins; whatever it leaves out is
//! read from `{path}/wp-config.php` (see [`wp_config`]); `enabled = false`
//! turns the dump off. A site with neither has no database.
//!
//! Credentials never go on a command line: the client tools get a 0600
//! `--defaults-extra-file` in a private 0700 directory that is removed when
//! the tool exits ([`client`]). Error texts are scrubbed of the password.
//!
//! The dump ([`dump()`]) is spooled to `{state_dir}/spool/{site}.sql`, since a
//! tar entry needs its size up front; the file lives for one run (it is
//! reused by every failover attempt) and is removed when the
//! [`DatabaseDump`] is dropped. Nothing here touches S3 or the catalog.

pub mod client;
mod dump;
mod import;
pub mod wp_config;

#[cfg(test)]
mod fuzz_tests;

pub use client::{ClientDefaults, client_command, dump_command, find_tool, remove_stale_client_dirs};
pub use dump::{DatabaseDump, DumpInfo, dump};
pub use import::{ImportInto, ImportReport, import_dump};

use crate::config::{DatabaseConfig, Secret};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbAddress {
    /// A host name or IP address, and a port (the client's default, 3306,
    /// when `None`). `localhost` makes the client tools use their default
    /// Unix socket, as it does for WordPress.
    Tcp { host: String, port: Option<u16> },
    /// A Unix socket.
    Socket(PathBuf),
}

impl fmt::Display for DbAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbAddress::Tcp { host, port: Some(p) } => write!(f, "{host}:{p}"),
            DbAddress::Tcp { host, port: None } => f.write_str(host),
            DbAddress::Socket(path) => write!(f, "socket {}", path.display()),
        }
    }
}

/// Where the settings came from, for logs and the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbSource {
    /// `[sites.database]` alone.
    Config,
    /// `wp-config.php` alone.
    WpConfig(PathBuf),
    /// `[sites.database]`, completed from `wp-config.php`.
    Both(PathBuf),
}

impl fmt::Display for DbSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbSource::Config => f.write_str("[sites.database]"),
            DbSource::WpConfig(p) => write!(f, "{}", p.display()),
            DbSource::Both(p) => write!(f, "[sites.database] + {}", p.display()),
        }
    }
}

/// Resolved connection settings of one site's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSettings {
    /// The database (schema) name.
    pub name: String,
    /// `None`: the client's default (the OS user, e.g. `root` through
    /// `unix_socket` authentication).
    pub user: Option<String>,
    /// `None` or empty: no password.
    pub password: Option<Secret>,
    pub address: DbAddress,
    pub source: DbSource,
    /// Longest a dump may run.
    pub timeout: std::time::Duration,
}

impl DbSettings {
    /// Replace every occurrence of the password in `text` (for error
    /// messages built from a client's stderr).
    pub fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(p) if !p.expose().is_empty() => text.replace(p.expose(), "<redacted>"),
            _ => text.to_string(),
        }
    }
}

/// Why the database could not be dumped or imported. No variant carries
/// the password.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("{path}: {source}")]
    WpConfig {
        path: PathBuf,
        #[source]
        source: wp_config::WpConfigError,
    },
    #[error("cannot read {path}: {source}")]
    WpConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database settings: {0}")]
    Settings(String),
    #[error("neither {0} is installed (searched PATH); install the mariadb-client (or mysql-client) package")]
    ToolMissing(&'static str),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database dump of {database:?} with {tool} failed ({status}): {stderr}")]
    DumpFailed {
        database: String,
        tool: String,
        status: String,
        stderr: String,
    },
    #[error("database import into {database:?} with {tool} failed ({status}): {stderr}")]
    ImportFailed {
        database: String,
        tool: String,
        status: String,
        stderr: String,
    },
    #[error("database dump cancelled")]
    Cancelled,
    #[error(
        "the dump of {database} with {tool} ran longer than {secs} s and was stopped; raise [sites.database].timeout_secs if the database needs longer"
    )]
    TimedOut { database: String, tool: String, secs: u64 },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DatabaseError {
    let what = what.into();
    move |source| DatabaseError::Io { what, source }
}

/// The settings of the database of the site at `site_path`, or `None` when
/// the site has none (no `[sites.database]` and no `wp-config.php`, or
/// `enabled = false`).
///
/// Per group, `[sites.database]` wins and `wp-config.php` fills what it
/// leaves out: the database `name`; the credentials (`user` with
/// `password`/`password_file`, taken together: setting `user` means the
/// password comes from `[sites.database]` too, or there is none); and the
/// address (`host`/`port`/`socket`; `port` alone means `127.0.0.1`).
///
/// `restore --with-db` on a host where the site is not configured can pass
/// the restored `DIR/files` as `site_path` and `None`.
pub fn resolve(site_path: &Path, configured: Option<&DatabaseConfig>) -> Result<Option<DbSettings>, DatabaseError> {
    let wp_path = site_path.join("wp-config.php");
    let raw = match configured {
        Some(r) if !r.enabled => return Ok(None),
        Some(r) => r.clone(),
        None if wp_path.is_file() => DatabaseConfig::default(),
        None => return Ok(None),
    };
    let has_name = raw.name.is_some();
    let has_credentials = raw.user.is_some();
    let has_address = raw.host.is_some() || raw.port.is_some() || raw.socket.is_some();
    let needs_wp = raw.name.is_none() || !has_credentials || !has_address;
    let wp = if needs_wp && wp_path.is_file() {
        let text = std::fs::read_to_string(&wp_path).map_err(|source| DatabaseError::WpConfigRead {
            path: wp_path.clone(),
            source,
        })?;
        let wp = wp_config::parse(&text).map_err(|source| DatabaseError::WpConfig {
            path: wp_path.clone(),
            source,
        })?;
        Some(wp)
    } else {
        None
    };
    let wp_err = |source| DatabaseError::WpConfig {
        path: wp_path.clone(),
        source,
    };

    let name = match (raw.name, &wp) {
        (Some(n), _) => n,
        (None, Some(wp)) => wp.name.clone(),
        (None, None) => {
            return Err(DatabaseError::Settings(format!(
                "no database name: set [sites.database].name, or add DB_NAME to {}, or set enabled = false",
                wp_path.display()
            )));
        }
    };
    check_db_name(&name)?;

    let (user, password) = if has_credentials {
        (raw.user, raw.password)
    } else if let Some(wp) = &wp {
        (Some(wp.user.clone()), Some(wp.password.clone()))
    } else {
        (None, None)
    };

    let address = if let Some(socket) = raw.socket {
        DbAddress::Socket(socket)
    } else if has_address {
        DbAddress::Tcp {
            host: raw.host.unwrap_or_else(|| "127.0.0.1".into()),
            port: raw.port,
        }
    } else if let Some(wp) = &wp {
        wp_config::parse_db_host(&wp.host).map_err(wp_err)?
    } else {
        DbAddress::Tcp {
            host: "localhost".into(),
            port: None,
        }
    };

    let source = match (&wp, has_name || has_credentials || has_address) {
        (None, _) => DbSource::Config,
        (Some(_), false) => DbSource::WpConfig(wp_path),
        (Some(_), true) => DbSource::Both(wp_path),
    };
    Ok(Some(DbSettings {
        name,
        user,
        password,
        address,
        source,
        timeout: std::time::Duration::from_secs(raw.timeout_secs),
    }))
}

/// The database name becomes the archive entry `database/{name}.sql`.
pub fn check_db_name(name: &str) -> Result<(), DatabaseError> {
    crate::config::check_db_name(name).map_err(DatabaseError::Settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawDatabase;
    use std::os::unix::fs::PermissionsExt;

    const WP: &str = "<?php
define('DB_NAME', 'wp_db');
define('DB_USER', 'wp_user');
define('DB_PASSWORD', 'wp-secret');
define('DB_HOST', 'localhost:/run/mysqld/mysqld.sock');
";

    fn cfg(raw: &RawDatabase) -> DatabaseConfig {
        DatabaseConfig::from_raw(raw.clone()).unwrap()
    }

    fn site(wp_config: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = wp_config {
            std::fs::write(dir.path().join("wp-config.php"), text).unwrap();
        }
        dir
    }

    #[test]
    fn no_section_and_no_wp_config_means_no_database() {
        let dir = site(None);
        assert_eq!(resolve(dir.path(), None).unwrap(), None);
    }

    #[test]
    fn wp_config_alone_is_enough() {
        let dir = site(Some(WP));
        let s = resolve(dir.path(), None).unwrap().unwrap();
        assert_eq!(s.name, "wp_db");
        assert_eq!(s.user.as_deref(), Some("wp_user"));
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("wp-secret"));
        assert_eq!(s.address, DbAddress::Socket("/run/mysqld/mysqld.sock".into()));
        assert!(matches!(s.source, DbSource::WpConfig(_)));
    }

    #[test]
    fn enabled_false_turns_the_dump_off_even_with_wp_config() {
        let dir = site(Some(WP));
        let raw = RawDatabase {
            enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(resolve(dir.path(), Some(&cfg(&raw))).unwrap(), None);
    }

    #[test]
    fn section_wins_per_group_and_wp_config_fills_the_rest() {
        let dir = site(Some(WP));
        let raw = RawDatabase {
            name: Some("other_db".into()),
            host: Some("db.internal".into()),
            port: Some(3307),
            ..Default::default()
        };
        let s = resolve(dir.path(), Some(&cfg(&raw))).unwrap().unwrap();
        assert_eq!(s.name, "other_db");
        assert_eq!(s.user.as_deref(), Some("wp_user"), "credentials come from wp-config");
        assert_eq!(
            s.address,
            DbAddress::Tcp {
                host: "db.internal".into(),
                port: Some(3307)
            }
        );
        assert!(matches!(s.source, DbSource::Both(_)));

        // Setting the user takes the password from the section too (none here).
        let raw = RawDatabase {
            user: Some("backup".into()),
            ..Default::default()
        };
        let s = resolve(dir.path(), Some(&cfg(&raw))).unwrap().unwrap();
        assert_eq!((s.user.as_deref(), s.password), (Some("backup"), None));
        assert_eq!(s.name, "wp_db");
    }

    #[test]
    fn a_complete_section_does_not_read_a_broken_wp_config() {
        let dir = site(Some("<?php define('DB_NAME', getenv('X'));"));
        let raw = RawDatabase {
            name: Some("n".into()),
            user: Some("u".into()),
            password: Some(crate::config::Secret::new("p")),
            socket: Some("/tmp/s.sock".into()),
            ..Default::default()
        };
        let s = resolve(dir.path(), Some(&cfg(&raw))).unwrap().unwrap();
        assert_eq!(s.source, DbSource::Config);
        // Without the name, wp-config.php is needed and its problem reported.
        let raw = RawDatabase { name: None, ..raw };
        let err = resolve(dir.path(), Some(&cfg(&raw))).unwrap_err().to_string();
        assert!(err.contains("wp-config.php") && err.contains("DB_NAME"), "{err}");
    }

    #[test]
    fn section_without_name_or_wp_config_is_an_error() {
        let dir = site(None);
        let raw = RawDatabase {
            user: Some("u".into()),
            ..Default::default()
        };
        let err = resolve(dir.path(), Some(&cfg(&raw))).unwrap_err().to_string();
        assert!(err.contains("no database name"), "{err}");
    }

    #[test]
    fn password_file_must_not_be_world_readable() {
        let dir = site(None);
        let file = dir.path().join("db.pw");
        std::fs::write(&file, "file-secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let raw = RawDatabase {
            name: Some("n".into()),
            user: Some("u".into()),
            password_file: Some(file.clone()),
            ..Default::default()
        };
        let err = format!("{:?}", DatabaseConfig::from_raw(raw.clone()).unwrap_err());
        assert!(err.contains("world-readable"), "{err}");
        assert!(!err.contains("file-secret"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = resolve(dir.path(), Some(&cfg(&raw))).unwrap().unwrap();
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("file-secret"));
    }

    #[test]
    fn unsafe_database_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            assert!(check_db_name(bad).is_err(), "{bad:?}");
        }
        check_db_name("wp_blog-1.x").unwrap();
    }

    #[test]
    fn scrub_removes_the_password() {
        let s = DbSettings {
            name: "n".into(),
            user: None,
            password: Some(Secret::new("hunter2")),
            address: DbAddress::Socket("/s".into()),
            source: DbSource::Config,
            timeout: std::time::Duration::from_secs(60),
        };
        assert_eq!(s.scrub("bad hunter2 here"), "bad <redacted> here");
    }
}
