//! The dump of one site's database, spooled to `{spool_dir}/{site}.sql`.
//!
//! The spool file is 0600 in a 0700 directory (a dump holds password
//! hashes), is named after the site (the site lock makes it exclusive; a
//! file left by a crash is overwritten by the next run) and is removed
//! when the [`DatabaseDump`] is dropped.

use super::client::{ClientDefaults, DUMP_TOOLS, client_dir_prefix, dump_command, find_tool};
use super::{DatabaseError, DbSettings, io_err};
use serde::Serialize;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// At most this much of a tool's stderr is kept.
const STDERR_CAP: usize = 64 * 1024;

/// What the manifest records about the dump.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DumpInfo {
    /// The database name.
    pub name: String,
    /// The archive entry holding the dump: `database/{name}.sql`.
    pub entry: String,
    /// As the server reported it in the dump header, e.g.
    /// `10.11.6-MariaDB-0+deb12u1`.
    pub server_version: Option<String>,
    pub dump_bytes: u64,
    pub duration_secs: f64,
    /// `mariadb-dump` or `mysqldump`.
    pub tool: String,
    /// Where the settings came from (`[sites.database]`, a wp-config.php).
    pub settings_from: String,
}

/// A finished dump in its spool file, removed on drop.
#[derive(Debug)]
pub struct DatabaseDump {
    pub info: DumpInfo,
    /// Lines the tool wrote to stderr although it succeeded.
    pub warnings: Vec<String>,
    spool: Spool,
}

impl DatabaseDump {
    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.spool.0
    }
}

/// Removes the spool file when dropped.
#[derive(Debug)]
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = %self.0.display(), "Could not remove the database spool file: {e}"),
        }
    }
}

/// Dump the database of `settings` into `{spool_dir}/{site}.sql`.
///
/// Fails when no dump tool is installed, when the tool exits unsuccessfully
/// (the error quotes its stderr, scrubbed of the password) or when `cancel`
/// fires (the tool is killed). The spool file is removed on every failure.
pub async fn dump(
    settings: &DbSettings,
    spool_dir: &Path,
    site: &str,
    cancel: &CancellationToken,
) -> Result<DatabaseDump, DatabaseError> {
    let tool = find_tool(DUMP_TOOLS).ok_or(DatabaseError::ToolMissing("mariadb-dump nor mysqldump"))?;
    let tool_name = tool
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(spool_dir)
        .map_err(io_err(format!("cannot create spool directory {}", spool_dir.display())))?;
    let path = spool_dir.join(format!("{site}.sql"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(format!("cannot create spool file {}", path.display())))?;
    let spool = Spool(path);
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("cannot restrict spool file {}", spool.0.display())))?;

    let defaults = ClientDefaults::new_in(settings, spool_dir, &client_dir_prefix(site))?;
    let started = Instant::now();
    let mut cmd = tokio::process::Command::from(dump_command(&tool, &defaults, &settings.name));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(io_err(format!("cannot start {}", tool.display())))?;
    drop(cmd);
    let stderr = child.stderr.take();
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(mut s) = stderr {
            // Keep the first part, drain the rest so the tool never blocks.
            let _ = (&mut s).take(STDERR_CAP as u64).read_to_end(&mut buf).await;
            let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let group = crate::process::group_of(&child);
    let status = tokio::select! {
        status = child.wait() => status.map_err(io_err(format!("waiting for {tool_name}")))?,
        () = cancel.cancelled() => {
            crate::process::stop_group(group, &mut child).await;
            return Err(DatabaseError::Cancelled);
        }
        () = tokio::time::sleep(settings.timeout) => {
            crate::process::stop_group(group, &mut child).await;
            return Err(DatabaseError::TimedOut {
                database: settings.name.clone(),
                tool: tool_name,
                secs: settings.timeout.as_secs(),
            });
        }
    };
    let stderr = settings.scrub(stderr_task.await.unwrap_or_default().trim());
    drop(defaults);
    let duration = started.elapsed();
    if !status.success() {
        return Err(DatabaseError::DumpFailed {
            database: settings.name.clone(),
            tool: tool_name,
            status: status.to_string(),
            stderr: if stderr.is_empty() {
                "no error output".into()
            } else {
                tail(&stderr, 2000)
            },
        });
    }
    let dump_bytes = std::fs::metadata(&spool.0)
        .map_err(io_err(format!("cannot read spool file {}", spool.0.display())))?
        .len();
    let server_version = read_server_version(&spool.0);
    let warnings: Vec<String> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{tool_name}: {l}"))
        .collect();
    for w in &warnings {
        warn!(site, "{w}");
    }
    let info = DumpInfo {
        entry: format!("database/{}.sql", settings.name),
        name: settings.name.clone(),
        server_version,
        dump_bytes,
        duration_secs: duration.as_secs_f64(),
        tool: tool_name,
        settings_from: settings.source.to_string(),
    };
    info!(
        site, database = %info.name, bytes = dump_bytes, secs = format!("{:.1}", info.duration_secs),
        server = info.server_version.as_deref().unwrap_or("unknown"),
        "Database dump finished."
    );
    Ok(DatabaseDump { info, warnings, spool })
}

/// `-- Server version\t10.11.6-MariaDB-…` from the dump header.
fn read_server_version(path: &Path) -> Option<String> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(8 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    parse_server_version(&String::from_utf8_lossy(&head))
}

fn parse_server_version(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("-- Server version"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The last `max` bytes of `s`, on a char boundary.
pub(super) fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_version_comes_from_the_header() {
        let head = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n--\n-- Host: 127.0.0.1    Database: wp\n-- ------------------------------------------------------\n-- Server version\t10.11.6-MariaDB-0+deb12u1\n\n";
        assert_eq!(parse_server_version(head).as_deref(), Some("10.11.6-MariaDB-0+deb12u1"));
        assert_eq!(parse_server_version("-- no header\n"), None);
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("short", 10), "short");
        assert_eq!(tail("aéb", 2), "…b");
    }
}
