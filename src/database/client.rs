//! Building the command lines of the MySQL/MariaDB client tools.
//!
//! The credentials go into a `[client]` option file, mode 0600, inside a
//! private 0700 directory that is removed when the [`ClientDefaults`] is
//! dropped. Its path is the tool's **first** argument
//! (`--defaults-extra-file` is only honoured there). The child's
//! environment is allow-listed (`PATH`, `LANG`, see
//! [`crate::process::inherited_env`]) and its `HOME` is that directory, so
//! an operator's `~/.my.cnf` (read after the extra file, and so winning
//! over it) cannot swap in other credentials, and nothing of sitebackup's
//! environment — storage credentials, `MYSQL_PWD` — reaches it. No
//! password is ever an argument or an environment variable of a child.

use super::{DatabaseError, DbAddress, DbSettings, io_err};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The dump tools, in order of preference.
pub const DUMP_TOOLS: &[&str] = &["mariadb-dump", "mysqldump"];
/// The command-line clients, in order of preference.
pub const CLIENT_TOOLS: &[&str] = &["mariadb", "mysql"];

/// Flags of every dump: a consistent snapshot of InnoDB tables without
/// locking (`--single-transaction`), rows streamed rather than buffered
/// (`--quick`), stored code and events included, binary data as hex so the
/// file is plain text, and utf8mb4 end to end. `--no-tablespaces` avoids
/// needing the PROCESS privilege, which a WordPress user does not have on
/// MySQL ≥ 8.0.21.
pub const DUMP_FLAGS: &[&str] = &[
    "--single-transaction",
    "--quick",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--default-character-set=utf8mb4",
    "--no-tablespaces",
];

/// The first of `names` found as an executable file on `PATH`.
pub fn find_tool(names: &[&str]) -> Option<PathBuf> {
    find_tool_in(&std::env::var_os("PATH")?, names)
}

fn find_tool_in(path: &std::ffi::OsStr, names: &[&str]) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::split_paths(path).collect();
    names.iter().find_map(|name| {
        dirs.iter().map(|d| d.join(name)).find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A private option file with the connection settings and credentials.
#[derive(Debug)]
pub struct ClientDefaults {
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl ClientDefaults {
    /// Write the option file for `settings` into a new private directory
    /// under the system's temporary directory.
    pub fn new(settings: &DbSettings) -> Result<Self, DatabaseError> {
        Self::new_in(settings, &std::env::temp_dir(), "sitebackup-db-")
    }

    /// Write the option file into a new private directory `{parent}/{prefix}XXXXXX`.
    /// The dump keeps it under `state_dir` (see [`client_dir_prefix`]), so
    /// that one left by a killed process is found and removed at the next
    /// start rather than lingering in a shared temporary directory.
    pub fn new_in(settings: &DbSettings, parent: &Path, prefix: &str) -> Result<Self, DatabaseError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(io_err("cannot create a private directory for the database credentials"))?;
        let file = dir.path().join("client.cnf");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(io_err(format!("cannot create {}", file.display())))?;
        f.write_all(render(settings)?.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(format!("cannot write {}", file.display())))?;
        Ok(Self { dir, file })
    }

    /// The option file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The private directory holding it (the child's `HOME`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn arg(&self) -> OsString {
        let mut arg = OsString::from("--defaults-extra-file=");
        arg.push(self.file.as_os_str());
        arg
    }
}

/// The name prefix of the private directories a site's dumps keep their
/// option file in, under the spool directory.
pub fn client_dir_prefix(site: &str) -> String {
    format!(".client-{site}-")
}

/// Remove the option-file directories a killed dump of `site` left in
/// `spool_dir`. Call only while holding the site's lock.
pub fn remove_stale_client_dirs(spool_dir: &Path, site: &str) -> usize {
    let prefix = client_dir_prefix(site);
    let Ok(entries) = std::fs::read_dir(spool_dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

/// `[client]` section for `settings`.
fn render(settings: &DbSettings) -> Result<String, DatabaseError> {
    let mut s = String::from("# Written by sitebackup for one run of a client tool; removed afterwards.\n[client]\n");
    if let Some(user) = &settings.user {
        s.push_str(&format!("user={}\n", quote(user)));
    }
    if let Some(pw) = &settings.password
        && !pw.expose().is_empty()
    {
        s.push_str(&format!("password={}\n", quote(pw.expose())));
    }
    match &settings.address {
        DbAddress::Tcp { host, port } => {
            s.push_str(&format!("host={}\n", quote(host)));
            if let Some(port) = port {
                s.push_str(&format!("port={port}\n"));
            }
        }
        DbAddress::Socket(path) => {
            let Some(p) = path.to_str() else {
                return Err(DatabaseError::Settings(format!(
                    "socket path {} is not valid UTF-8",
                    path.display()
                )));
            };
            s.push_str("host=\"localhost\"\n");
            s.push_str(&format!("socket={}\n", quote(p)));
        }
    }
    Ok(s)
}

/// A double-quoted option-file value. The client library strips the
/// quotes, keeps `#` inside them, and decodes `\\ \" \n \r \t`.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn base(tool: &Path, defaults: &ClientDefaults) -> Command {
    let mut cmd = Command::new(tool);
    cmd.arg(defaults.arg());
    cmd.env_clear().envs(crate::process::inherited_env());
    cmd.env("HOME", defaults.dir());
    cmd
}

/// `mariadb-dump --defaults-extra-file=… [DUMP_FLAGS] -- DATABASE`: the
/// dump, on stdout, without `CREATE DATABASE`/`USE` (so that it can be
/// imported under another name).
pub fn dump_command(tool: &Path, defaults: &ClientDefaults, database: &str) -> Command {
    let mut cmd = base(tool, defaults);
    cmd.args(DUMP_FLAGS).arg("--").arg(database);
    cmd
}

/// `mariadb --defaults-extra-file=… --batch --default-character-set=utf8mb4`:
/// the client, ready for more arguments (`-e SQL`, `-- DATABASE`).
pub fn client_command(tool: &Path, defaults: &ClientDefaults) -> Command {
    let mut cmd = base(tool, defaults);
    cmd.args(["--batch", "--default-character-set=utf8mb4"]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::super::DbSource;
    use super::*;
    use crate::config::Secret;

    const PASSWORD: &str = "s3cr#t \"quoted\" \\back";

    fn settings(address: DbAddress) -> DbSettings {
        DbSettings {
            name: "wp_blog".into(),
            user: Some("blog".into()),
            password: Some(Secret::new(PASSWORD)),
            address,
            source: DbSource::Config,
            timeout: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn dump_command_never_carries_the_password() {
        let s = settings(DbAddress::Tcp {
            host: "127.0.0.1".into(),
            port: Some(3307),
        });
        let defaults = ClientDefaults::new(&s).unwrap();
        let cmd = dump_command(Path::new("/usr/bin/mariadb-dump"), &defaults, &s.name);
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args[0],
            format!("--defaults-extra-file={}", defaults.path().display()),
            "the defaults file must be the first argument"
        );
        for flag in DUMP_FLAGS {
            assert!(args.iter().any(|a| a == flag), "{flag} missing from {args:?}");
        }
        assert_eq!(args.last().map(String::as_str), Some("wp_blog"));
        for a in &args {
            assert!(!a.contains("s3cr"), "password in argument {a:?}");
            assert!(!a.starts_with("-p") && !a.starts_with("--password"), "{a:?}");
        }
        for (k, v) in cmd.get_envs() {
            let v = v.map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
            assert!(!v.contains("s3cr"), "password in env {k:?}");
        }
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(envs.contains(&(std::ffi::OsStr::new("HOME"), Some(defaults.dir().as_os_str()))));
        // Allow-listed: only PATH, HOME and LANG reach the tool.
        for (k, _) in &envs {
            assert!(
                ["PATH", "HOME", "LANG"].contains(&k.to_str().unwrap()),
                "{k:?} passed on"
            );
        }
    }

    #[test]
    fn defaults_file_is_private_quoted_and_removed() {
        let s = settings(DbAddress::Tcp {
            host: "db".into(),
            port: Some(3307),
        });
        let defaults = ClientDefaults::new(&s).unwrap();
        let (dir, file) = (defaults.dir().to_path_buf(), defaults.path().to_path_buf());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("[client]\n"), "{text}");
        assert!(text.contains("user=\"blog\"\n"), "{text}");
        assert!(text.contains(r#"password="s3cr#t \"quoted\" \\back""#), "{text}");
        assert!(text.contains("host=\"db\"\nport=3307\n"), "{text}");
        drop(defaults);
        assert!(!dir.exists(), "private directory left behind");
    }

    #[test]
    fn socket_address_forces_localhost() {
        let s = settings(DbAddress::Socket("/run/mysqld/mysqld.sock".into()));
        let text = render(&s).unwrap();
        assert!(
            text.contains("host=\"localhost\"\nsocket=\"/run/mysqld/mysqld.sock\"\n"),
            "{text}"
        );
    }

    #[test]
    fn empty_password_and_default_user_are_left_out() {
        let mut s = settings(DbAddress::Tcp {
            host: "localhost".into(),
            port: None,
        });
        s.user = None;
        s.password = Some(Secret::new(""));
        let text = render(&s).unwrap();
        assert!(!text.contains("password") && !text.contains("user="), "{text}");
    }

    #[test]
    fn find_tool_prefers_the_first_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b-tool", "a-tool"] {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.path().join("not-exec"), "").unwrap();
        let found = find_in(&[dir.path().to_path_buf()], &["no-such-tool", "a-tool", "b-tool"]);
        assert_eq!(found, Some(dir.path().join("a-tool")));
        assert_eq!(find_in(&[dir.path().to_path_buf()], &["not-exec"]), None);
    }

    fn find_in(dirs: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
        let joined = std::env::join_paths(dirs).unwrap();
        super::find_tool_in(&joined, names)
    }
}
