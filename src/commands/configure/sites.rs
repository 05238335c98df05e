//! Sites in a [`Draft`]: list, detect the database, add, remove. One
//! implementation for the wizard and the subcommands. A site's database is
//! left to `wp-config.php` (read at each backup, so its password never
//! lands in the TOML file) unless the operator turns the dump off.

use super::doc;
use super::files::Draft;
use crate::commands::UsageError;
use crate::config::RawRetention;
use serde::Serialize;
use std::path::{Path, PathBuf};
use toml_edit::{Item, Table};

/// One `[[sites]]` entry as the TOML file has it.
#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    pub name: String,
    pub path: Option<String>,
    pub schedule: Option<String>,
    /// `keep_daily = 14, …`, or none.
    pub retention: Option<String>,
    /// The database dump turned off with `enabled = false`.
    pub database_off: bool,
}

/// A site to add.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    pub name: String,
    pub path: PathBuf,
    /// A cron line (5 or 6 fields).
    pub schedule: String,
    /// `None`: keep every archive.
    pub retention: Option<RawRetention>,
    /// Write `[sites.database] enabled = false`.
    pub no_database: bool,
    pub exclude: Vec<String>,
}

/// What the site's directory says about its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// A readable `wp-config.php`: what it names (never the password).
    WordPress(String),
    /// No `wp-config.php`: no database unless configured by hand.
    None,
    /// A `wp-config.php` that cannot be used as it is, and why.
    Unusable(String),
}

/// Read `{path}/wp-config.php` the way the backup will.
pub fn detect(path: &Path) -> Detection {
    match crate::database::resolve(path, None) {
        Ok(Some(db)) => Detection::WordPress(format!(
            "database {} on {}{}, from {}",
            db.name,
            db.address,
            db.user.map(|u| format!(" as user {u}")).unwrap_or_default(),
            db.source
        )),
        Ok(None) => Detection::None,
        Err(e) => Detection::Unusable(e.to_string()),
    }
}

/// The directory's name, made safe for object keys.
pub fn default_name(path: &Path) -> String {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches('.').to_string();
    if name.is_empty() { "site".into() } else { name }
}

/// Check a site directory given by the operator.
pub fn check_path(path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    if !path.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    Ok(path.to_path_buf())
}

pub fn list(draft: &Draft) -> Vec<SiteView> {
    doc::tables(&draft.doc, "sites")
        .map(|t| {
            let retention = t.get("retention").and_then(Item::as_table).map(|r| {
                r.iter()
                    .map(|(k, v)| {
                        format!(
                            "{k} = {}",
                            v.as_value().map(|v| v.to_string()).unwrap_or_default().trim()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let database_off = t
                .get("database")
                .and_then(Item::as_table)
                .and_then(|d| d.get("enabled"))
                .and_then(Item::as_bool)
                == Some(false);
            SiteView {
                name: doc::str_of(t, "name").unwrap_or_default(),
                path: doc::str_of(t, "path"),
                schedule: doc::str_of(t, "schedule"),
                retention,
                database_off,
            }
        })
        .collect()
}

pub fn add(draft: &mut Draft, spec: &SiteSpec) -> anyhow::Result<()> {
    if !crate::config::is_safe_name(&spec.name) {
        return Err(UsageError(format!(
            "site name {:?} must use only A-Z a-z 0-9 . _ - and not start with a dot",
            spec.name
        ))
        .into());
    }
    if list(draft).iter().any(|s| s.name == spec.name) {
        return Err(UsageError(format!(
            "a site named {:?} exists already; remove it first or pick another --name",
            spec.name
        ))
        .into());
    }
    let mut t = Table::new();
    doc::set(&mut t, "name", spec.name.as_str());
    doc::set(&mut t, "path", spec.path.display().to_string());
    doc::set(&mut t, "schedule", spec.schedule.as_str());
    if !spec.exclude.is_empty() {
        let list: toml_edit::Array = spec.exclude.iter().map(String::as_str).collect();
        doc::set(&mut t, "exclude", list);
    }
    if spec.no_database {
        let mut db = Table::new();
        doc::set(&mut db, "enabled", false);
        t.insert("database", Item::Table(db));
    }
    if let Some(policy) = &spec.retention {
        t.insert("retention", Item::Table(retention_table(policy)));
    }
    doc::array_of_tables(&mut draft.doc, "sites")
        .ok_or_else(|| {
            UsageError("`sites` in the TOML file is not a list of [[sites]] tables; edit it by hand".into())
        })?
        .push(t);
    Ok(())
}

fn retention_table(policy: &RawRetention) -> Table {
    let mut t = Table::new();
    let counts = [
        ("keep_last", policy.keep_last),
        ("keep_hourly", policy.keep_hourly),
        ("keep_daily", policy.keep_daily),
        ("keep_weekly", policy.keep_weekly),
        ("keep_monthly", policy.keep_monthly),
        ("keep_yearly", policy.keep_yearly),
    ];
    for (key, value) in counts {
        if let Some(n) = value {
            doc::set(&mut t, key, i64::from(n));
        }
    }
    if let Some(within) = &policy.keep_within {
        doc::set(&mut t, "keep_within", within.as_str());
    }
    t
}

/// Remove the site named `name` (its archives stay where they are).
pub fn remove(draft: &mut Draft, name: &str) -> anyhow::Result<()> {
    let n = doc::remove_tables(&mut draft.doc, "sites", |t| {
        doc::str_of(t, "name").as_deref() == Some(name)
    });
    if n == 0 {
        let known: Vec<String> = list(draft).into_iter().map(|s| s.name).collect();
        return Err(UsageError(format!(
            "unknown site {name:?}; configured: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_directories_are_safe() {
        assert_eq!(default_name(Path::new("/var/www/shop.example.com")), "shop.example.com");
        assert_eq!(default_name(Path::new("/srv/my site")), "my-site");
        assert_eq!(default_name(Path::new("/srv/.hidden")), "hidden");
        assert_eq!(default_name(Path::new("/")), "site");
    }

    #[test]
    fn detection_never_shows_the_password() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect(dir.path()), Detection::None);
        std::fs::write(
            dir.path().join("wp-config.php"),
            "<?php\ndefine('DB_NAME', 'wp_shop');\ndefine('DB_USER', 'shop');\ndefine('DB_PASSWORD', 'pw-Secret-123');\ndefine('DB_HOST', 'localhost:3307');\n",
        )
        .unwrap();
        let Detection::WordPress(text) = detect(dir.path()) else {
            panic!("not detected")
        };
        assert!(
            text.contains("wp_shop") && text.contains("localhost:3307") && text.contains("shop"),
            "{text}"
        );
        assert!(!text.contains("pw-Secret-123"), "{text}");
        std::fs::write(
            dir.path().join("wp-config.php"),
            "<?php\ndefine('DB_NAME', getenv('X'));\n",
        )
        .unwrap();
        assert!(matches!(detect(dir.path()), Detection::Unusable(_)));
    }
}
