//! The dotenv file: which one is read, who may own it, and which of its
//! variables are taken.
//!
//! Only an explicitly named file (`--env-file`) or the packaged
//! [`PACKAGED_ENV_FILE`] is read: never a `.env` in the current directory,
//! which the web user may have written when the tool runs from inside a
//! site. The file must be a regular file owned by root or by the invoking
//! user and must not be writable by group or others. Only `SITEBACKUP_*`
//! and `S3_SERVER_*` variables are taken from it; other names are ignored
//! with a warning that names them (never their values).
//!
//! The accepted variables are kept in this process only ([`environment`],
//! [`env_var`]); the process environment is never changed, so child
//! processes (hooks, dump tools) never inherit them.

use super::ConfigError;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The env file of the Debian package (also the unit's `EnvironmentFile=`),
/// read when no `--env-file` is given and it exists.
pub const PACKAGED_ENV_FILE: &str = "/etc/sitebackup/sitebackup.env";

/// Env files are a few lines; anything bigger is refused.
const MAX_ENV_FILE: u64 = 1024 * 1024;

/// Variables taken from the env file, once per process.
static FILE_VARS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
/// The env file they came from (`None`: no file was read).
static FILE_PATH: OnceLock<Option<PathBuf>> = OnceLock::new();

/// What reading an env file gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvFile {
    pub path: Option<PathBuf>,
    /// `SITEBACKUP_*` and `S3_SERVER_*` variables.
    pub vars: BTreeMap<String, String>,
    /// Names of the variables that were ignored.
    pub ignored: Vec<String>,
}

/// Is `name` one the env file may set?
pub fn is_accepted_name(name: &str) -> bool {
    name.starts_with("SITEBACKUP_") || name.starts_with("S3_SERVER_")
}

/// `--env-file`, else [`PACKAGED_ENV_FILE`] if it exists. Call once, first;
/// later calls keep the first file's variables. Ignored names are logged
/// as a warning.
pub fn load_env_file(path: Option<&Path>) -> Result<(), ConfigError> {
    let file = match path {
        Some(p) => read_env_file(p)?,
        None => {
            let packaged = Path::new(PACKAGED_ENV_FILE);
            match std::fs::symlink_metadata(packaged) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => EnvFile::default(),
                _ => read_env_file(packaged)?,
            }
        }
    };
    if !file.ignored.is_empty()
        && let Some(p) = &file.path
    {
        tracing::warn!(
            path = %p.display(),
            "Ignoring {} in the env file: only SITEBACKUP_* and S3_SERVER_* variables are read from it.",
            file.ignored.join(", ")
        );
    }
    let _ = FILE_PATH.set(file.path);
    let _ = FILE_VARS.set(file.vars);
    Ok(())
}

/// Where the settings of this process came from, for `config check`:
/// names only, never values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EnvSources {
    /// The env file read at start, if any.
    pub env_file: Option<PathBuf>,
    /// `SITEBACKUP_*` and `S3_SERVER_*` variables taken from the env file.
    pub from_env_file: Vec<String>,
    /// The same names set in the process environment (they win over the
    /// env file).
    pub from_environment: Vec<String>,
}

pub fn env_sources() -> EnvSources {
    let from_environment: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| is_accepted_name(k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let from_env_file = FILE_VARS
        .get()
        .map(|vars| vars.keys().filter(|k| !from_environment.contains(k)).cloned().collect())
        .unwrap_or_default();
    EnvSources {
        env_file: FILE_PATH.get().cloned().flatten(),
        from_env_file,
        from_environment,
    }
}

/// Read and check one env file (see the module docs).
pub fn read_env_file(path: &Path) -> Result<EnvFile, ConfigError> {
    let fail = |message: String| ConfigError::EnvFile {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    check_owner_and_mode(&meta).map_err(fail)?;
    let mut text = Vec::new();
    file.take(MAX_ENV_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_ENV_FILE {
        return Err(fail(format!(
            "larger than {} KiB: not an env file",
            MAX_ENV_FILE / 1024
        )));
    }
    let mut out = EnvFile {
        path: Some(path.to_path_buf()),
        ..EnvFile::default()
    };
    for item in dotenvy::from_read_iter(text.as_slice()) {
        // dotenvy's parse errors quote the offending line, which may hold
        // a secret: report only the position.
        let (name, value) = item.map_err(|e| {
            fail(match e {
                dotenvy::Error::LineParse(_, idx) => format!("syntax error at byte {idx}"),
                dotenvy::Error::Io(io) => io.to_string(),
                _ => "cannot parse".into(),
            })
        })?;
        if is_accepted_name(&name) {
            out.vars.entry(name).or_insert(value);
        } else if !out.ignored.contains(&name) {
            out.ignored.push(name);
        }
    }
    Ok(out)
}

/// Owned by root or the invoking user, a regular file, not writable by
/// group or others.
fn check_owner_and_mode(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let uid = meta.uid();
    let me = [rustix::process::getuid().as_raw(), rustix::process::geteuid().as_raw()];
    if uid != 0 && !me.contains(&uid) {
        return Err(format!(
            "owned by uid {uid}, neither root nor the user running sitebackup: anyone who can write it controls the backup; `chown root:root` it"
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {mode:04o}): anyone who can write it controls the backup; run `chmod 600` on it"
        ));
    }
    Ok(())
}

/// The environment the configuration is read from: the process
/// environment over the env file's variables (a variable already set is
/// not overridden). Names or values that are not UTF-8 are left out.
pub fn environment() -> BTreeMap<String, String> {
    let mut env = FILE_VARS.get().cloned().unwrap_or_default();
    for (k, v) in std::env::vars_os() {
        if let (Ok(k), Ok(v)) = (k.into_string(), v.into_string()) {
            env.insert(k, v);
        }
    }
    env
}

/// One variable of [`environment`].
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| FILE_VARS.get().and_then(|vars| vars.get(name).cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let p = dir.join("sitebackup.env");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn only_sitebackup_and_s3_server_names_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "S3_SERVER_1_PATH=/srv/b\nSITEBACKUP_HOST_ID=h\nLD_PRELOAD=/tmp/evil.so\nPATH=/tmp\nLD_PRELOAD=again\n",
            0o600,
        );
        let f = read_env_file(&p).unwrap();
        assert_eq!(f.vars.len(), 2);
        assert_eq!(f.vars["S3_SERVER_1_PATH"], "/srv/b");
        assert_eq!(f.ignored, vec!["LD_PRELOAD".to_string(), "PATH".to_string()]);
    }

    #[test]
    fn group_or_world_writable_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o620, 0o602, 0o666] {
            let p = write(dir.path(), "S3_SERVER_1_PATH=/srv/b\n", mode);
            let e = read_env_file(&p).unwrap_err().to_string();
            assert!(e.contains("writable by group or others"), "{mode:o}: {e}");
            assert!(!e.contains("/srv/b"), "{e}");
        }
        let p = write(dir.path(), "S3_SERVER_1_PATH=/srv/b\n", 0o644);
        read_env_file(&p).unwrap();
    }

    #[test]
    fn parse_errors_do_not_quote_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "S3_SERVER_1_SECRET_KEY='hunter2\n", 0o600);
        let e = read_env_file(&p).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
