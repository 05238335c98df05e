//! Loading a dump back into a database (`restore --with-db`).
//!
//! Which database receives it is the caller's explicit choice
//! ([`ImportInto`]), never something read from the archive: a new (or
//! empty) database by name, or the live database of a configured site.
//! The dump is handed over as an open file, opened by the caller without
//! following symlinks. The client runs with `--one-database`, so a `USE`
//! in the dump cannot switch it to another database.

use super::client::{CLIENT_TOOLS, ClientDefaults, client_command, find_tool};
use super::dump::tail;
use super::{DatabaseError, DbSettings, check_db_name, io_err};
use serde::Serialize;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;
use tracing::info;

/// The outcome of [`import_dump`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImportReport {
    /// The database the dump went into.
    pub database: String,
    /// Whether it had to be created.
    pub created: bool,
    pub bytes: u64,
    pub duration_secs: f64,
    /// `mariadb` or `mysql`.
    pub tool: String,
}

/// Where an import goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportInto {
    /// `--db-name NAME`: a new database, created (utf8mb4) if missing; an
    /// existing one must hold no table.
    New(String),
    /// `--overwrite-live-db`: the database of the settings (the site's
    /// live database), created if missing; its tables are replaced.
    Live,
}

/// Import the SQL dump `sql_file` (open, a regular file) as `into` says.
/// Connects with `settings` under the same rules as the dump (no password
/// on the command line). The file is streamed into the client's stdin, so
/// memory use does not depend on its size.
///
/// Blocking: from async code call it through `spawn_blocking`. Dumps made
/// by `mariadb-dump` ≥ 10.11.8 start with a line Oracle's `mysql` client
/// rejects; the `mariadb` client is preferred when both are installed.
pub fn import_dump(
    settings: &DbSettings,
    file: std::fs::File,
    into: &ImportInto,
) -> Result<ImportReport, DatabaseError> {
    let database = match into {
        ImportInto::New(name) => name.clone(),
        ImportInto::Live => settings.name.clone(),
    };
    check_db_name(&database)?;
    let tool = find_tool(CLIENT_TOOLS).ok_or(DatabaseError::ToolMissing("mariadb nor mysql"))?;
    let tool_name = tool
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = file.metadata().map_err(io_err("cannot read the dump"))?.len();
    let defaults = ClientDefaults::new(settings)?;
    let started = Instant::now();
    let failed = |status: String, stderr: String| DatabaseError::ImportFailed {
        database: database.clone(),
        tool: tool_name.clone(),
        status,
        stderr: tail(&settings.scrub(stderr.trim()), 2000),
    };

    // Does it exist? (Asking first, rather than CREATE DATABASE IF NOT
    // EXISTS, works for a user who may use the database but not create one.)
    let hex = hex::encode(database.as_bytes());
    let mut probe = client_command(&tool, &defaults);
    probe.args([
        "--skip-column-names",
        "-e",
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = CONVERT(X'{hex}' USING utf8mb4)"
        ),
    ]);
    let out = run(probe, &tool_name)?;
    if !out.0.success() {
        return Err(failed(out.0.to_string(), out.2));
    }
    let exists = out.1.trim() != "0";
    if exists && matches!(into, ImportInto::New(_)) {
        let mut tables = client_command(&tool, &defaults);
        tables.args([
            "--skip-column-names",
            "-e",
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = CONVERT(X'{hex}' USING utf8mb4)"
            ),
        ]);
        let out = run(tables, &tool_name)?;
        if !out.0.success() {
            return Err(failed(out.0.to_string(), out.2));
        }
        if out.1.trim() != "0" {
            return Err(DatabaseError::Settings(format!(
                "database {database} already exists and holds tables; --db-name fills a new (or empty) database: pick another name, drop it first, or use --overwrite-live-db to replace the site's live database"
            )));
        }
    }
    if !exists {
        let mut create = client_command(&tool, &defaults);
        create.args([
            "-e",
            &format!("CREATE DATABASE {} CHARACTER SET utf8mb4", quote_ident(&database)),
        ]);
        let out = run(create, &tool_name)?;
        if !out.0.success() {
            return Err(failed(out.0.to_string(), out.2));
        }
        info!(database = %database, "Created the database.");
    }

    let mut import = client_command(&tool, &defaults);
    import.arg("--one-database").arg("--").arg(&database);
    import
        .stdin(Stdio::from(file))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = import
        .spawn()
        .map_err(io_err(format!("cannot start {}", tool.display())))?;
    let mut stderr = Vec::new();
    if let Some(mut s) = child.stderr.take() {
        // Keep the first 64 KiB, drain the rest so the client never blocks.
        let _ = (&mut s).take(64 * 1024).read_to_end(&mut stderr);
        let _ = std::io::copy(&mut s, &mut std::io::sink());
    }
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let status = child.wait().map_err(io_err(format!("waiting for {tool_name}")))?;
    drop(defaults);
    if !status.success() {
        return Err(failed(status.to_string(), stderr));
    }
    let report = ImportReport {
        database,
        created: !exists,
        bytes,
        duration_secs: started.elapsed().as_secs_f64(),
        tool: tool_name,
    };
    info!(
        database = %report.database, bytes, secs = format!("{:.1}", report.duration_secs),
        "Database import finished."
    );
    Ok(report)
}

/// Run a short client command: (status, stdout, stderr).
fn run(mut cmd: Command, tool_name: &str) -> Result<(std::process::ExitStatus, String, String), DatabaseError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("cannot run {tool_name}")))?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A backquoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_backquoted() {
        assert_eq!(quote_ident("copy"), "`copy`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
    }
}
