//! The two files `configure` edits, as a [`Draft`]: the TOML file (through
//! `toml_edit`, so comments, unknown keys and ordering survive) and the env
//! file ([`EnvDoc`]), plus the node's token file. Nothing is written until
//! [`Draft::save`], which validates the whole resulting configuration the
//! way `config check` does and then replaces each changed file atomically
//! (temporary file, fsync, rename, fsync of the directory), keeping the
//! previous version as `FILE.bak`.

use super::envdoc::EnvDoc;
use crate::cli::Cli;
use crate::config::{self, Config, ConfigError, Problem, Secret};
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use toml_edit::DocumentMut;

/// Larger files are not configuration files.
const MAX_FILE: u64 = 1024 * 1024;

/// Where the configuration lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `--config`, else `$SITEBACKUP_CONFIG`, else the default.
    pub toml: PathBuf,
    /// `--env-file`, else the packaged env file.
    pub env: PathBuf,
}

impl Paths {
    pub fn from_cli(cli: &Cli) -> Self {
        let toml = cli
            .config
            .clone()
            .or_else(|| {
                config::env_var("SITEBACKUP_CONFIG")
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG_PATH));
        let env = cli
            .env_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::PACKAGED_ENV_FILE));
        Self { toml, env }
    }

    /// `node.token` beside the TOML file.
    pub fn default_token_file(&self) -> PathBuf {
        self.toml.parent().unwrap_or(Path::new("/")).join("node.token")
    }
}

/// The configuration being edited. Its `Debug` names the files only: the
/// env text and token it holds are secrets.
#[derive(Clone)]
pub struct Draft {
    pub paths: Paths,
    pub doc: DocumentMut,
    pub env: EnvDoc,
    /// The texts as loaded; a missing file is written on save (the
    /// commands that follow name it too).
    toml_before: Option<String>,
    env_before: Option<String>,
    /// The env file's variables as loaded: the daemon needs a restart
    /// only when they change.
    env_vars_before: BTreeMap<String, String>,
    /// A node token to write (0600) with the rest, and where.
    token: Option<(PathBuf, Secret)>,
}

impl std::fmt::Debug for Draft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Draft")
            .field("paths", &self.paths)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// What [`Draft::save`] wrote.
#[derive(Debug, Default)]
pub struct SaveReport {
    /// Each file written, with its backup if it existed before.
    pub written: Vec<(PathBuf, Option<PathBuf>)>,
    pub toml_changed: bool,
    /// The env file or the token changed: the daemon must restart (it
    /// reads them at start only).
    pub restart_needed: bool,
    /// The state directory of the saved configuration (where a running
    /// daemon holds its lock).
    pub state_dir: PathBuf,
}

impl Draft {
    pub fn load(paths: Paths) -> anyhow::Result<Self> {
        let toml_before = read_small(&paths.toml)?;
        let env_before = read_small(&paths.env)?;
        let doc = match &toml_before {
            Some(text) => text
                .parse::<DocumentMut>()
                // The parser's message quotes the line, which may hold a secret.
                .map_err(|e| ConfigError::File {
                    path: paths.toml.clone(),
                    message: format!("not valid TOML{}", line_of(text, e.span())),
                })?,
            None => new_toml(),
        };
        let doc = comments_first(doc);
        // What counts as unchanged: the document as loaded (a file of
        // comments gains one blank line above what is added, if anything is).
        let toml_before = toml_before.map(|_| doc.to_string());
        let env = env_before.as_deref().map_or_else(EnvDoc::new_file, EnvDoc::parse);
        Ok(Self {
            paths,
            env_vars_before: env.vars().unwrap_or_default(),
            toml_before,
            env_before,
            doc,
            env,
            token: None,
        })
    }

    /// Keep `token` in `path` (0600) when saving.
    pub fn set_token(&mut self, path: PathBuf, token: Secret) {
        self.token = Some((path, token));
    }

    pub fn toml_text(&self) -> String {
        self.doc.to_string()
    }

    pub fn changed(&self) -> bool {
        self.toml_changed() || self.env_changed() || self.token.is_some()
    }

    fn toml_changed(&self) -> bool {
        self.toml_before.as_deref() != Some(self.toml_text().as_str())
    }

    fn env_changed(&self) -> bool {
        self.env_before.as_deref() != Some(self.env.render().as_str())
    }

    /// The environment the daemon would read the configuration from: the
    /// env file's variables under the process environment.
    pub fn environment(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut env = self.env.vars().map_err(|message| ConfigError::EnvFile {
            path: self.paths.env.clone(),
            message,
        })?;
        env.extend(config::environment());
        Ok(env)
    }

    /// Validate the whole configuration as it would be after saving.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let mut env = self.environment()?;
        // A token not written yet is read from a private temporary copy.
        let _staged = match &self.token {
            Some((_, token)) if !env.contains_key("SITEBACKUP_MASTER_TOKEN_FILE") => {
                let mut tmp = tempfile::NamedTempFile::new().map_err(|e| ConfigError::File {
                    path: std::env::temp_dir(),
                    message: e.to_string(),
                })?;
                writeln!(tmp, "{}", token.expose())
                    .and_then(|()| tmp.flush())
                    .map_err(|e| ConfigError::File {
                        path: tmp.path().to_path_buf(),
                        message: e.to_string(),
                    })?;
                env.insert("SITEBACKUP_MASTER_TOKEN_FILE".into(), tmp.path().display().to_string());
                Some(tmp)
            }
            _ => None,
        };
        config::build_from_toml(&self.toml_text(), &self.paths.toml, &env)
    }

    /// Validate, then write what changed. Nothing is written when the
    /// configuration is invalid.
    pub fn save(&mut self) -> anyhow::Result<SaveReport> {
        let config = self.validate()?;
        let mut report = SaveReport {
            state_dir: config.state_dir.clone(),
            ..SaveReport::default()
        };
        if let Some((path, token)) = &self.token {
            let text = format!("{}\n", token.expose());
            let backup = write_atomic(path, text.as_bytes(), true)?;
            report.written.push((path.clone(), backup));
            report.restart_needed = true;
        }
        if self.env_changed() {
            let text = self.env.render();
            let backup = write_atomic(&self.paths.env, text.as_bytes(), true)?;
            report.written.push((self.paths.env.clone(), backup));
            let vars = self.env.vars().unwrap_or_default();
            report.restart_needed |= vars != self.env_vars_before;
            self.env_before = Some(text);
            self.env_vars_before = vars;
        }
        if self.toml_changed() {
            let text = self.toml_text();
            let backup = write_atomic(&self.paths.toml, text.as_bytes(), false)?;
            report.written.push((self.paths.toml.clone(), backup));
            report.toml_changed = true;
            self.toml_before = Some(text);
        }
        self.token = None;
        Ok(report)
    }
}

/// A fresh TOML file: a header only.
fn new_toml() -> DocumentMut {
    let mut doc = DocumentMut::new();
    doc.decor_mut().set_prefix(
        "# sitebackup configuration, written by `sitebackup configure` (edit freely: it keeps\n\
         # comments). Every key is documented in config.example.toml; secrets are in the env file.\n\n",
    );
    doc
}

/// A file of comments only (the packaged one, every setting commented
/// out) holds them all as trailing text, after which anything added would
/// be written before them: make them the file's header instead.
fn comments_first(mut doc: DocumentMut) -> DocumentMut {
    let trailing = doc.trailing().as_str().unwrap_or("").to_string();
    if doc.as_table().is_empty() && !trailing.trim().is_empty() {
        let prefix = doc.decor().prefix().and_then(|p| p.as_str()).unwrap_or("").to_string();
        let mut header = format!("{prefix}{trailing}");
        if !header.ends_with("\n\n") {
            header.push('\n');
        }
        doc.decor_mut().set_prefix(header);
        doc.set_trailing("");
    }
    doc
}

/// The file's text, `None` when it does not exist.
fn read_small(path: &Path) -> anyhow::Result<Option<String>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if text.len() as u64 > MAX_FILE {
        anyhow::bail!(
            "{} is larger than {} KiB: not a configuration file",
            path.display(),
            MAX_FILE / 1024
        );
    }
    Ok(Some(text))
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| format!(" (line {})", text[..s.start.min(text.len())].lines().count().max(1)))
        .unwrap_or_default()
}

/// Replace `path` with `contents` atomically: a `0600` temporary file in
/// the same directory, fsync, the old file kept as `FILE.bak` (a hard
/// link, so the backup is the old file itself, with its mode), rename,
/// fsync of the directory. `private`: the file stays `0600`; otherwise an
/// existing file keeps its mode (a new one is `0600`). A symlink is
/// followed: its target is replaced. Returns the backup's path.
pub fn write_atomic(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<Option<PathBuf>> {
    let path = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(_) => path.to_path_buf(),
    };
    let ctx = |what: &str| format!("cannot {what} {}", path.display());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        crate::private::create_dir_all(dir).with_context(|| ctx("create the directory of"))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| ctx("write"))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> anyhow::Result<Option<PathBuf>> {
        let mut file = crate::private::create_new(&tmp).with_context(|| ctx("write a temporary file beside"))?;
        file.write_all(contents).with_context(|| ctx("write"))?;
        let existing = std::fs::metadata(&path).ok();
        if let Some(meta) = &existing
            && !private
        {
            let mode = meta.permissions().mode() & 0o777;
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .with_context(|| ctx("set the mode of"))?;
        }
        file.sync_all().with_context(|| ctx("fsync"))?;
        let backup = match existing {
            Some(_) => Some(keep_backup(&path, dir, &name)?),
            None => None,
        };
        std::fs::rename(&tmp, &path).with_context(|| ctx("replace"))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| ctx("fsync the directory of"))?;
        Ok(backup)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `FILE.bak`: the current file, replaced atomically.
fn keep_backup(path: &Path, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let backup = dir.join(format!("{name}.bak"));
    let tmp = dir.join(format!(".{name}.bak.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    // A copy into a new 0600 file, not a hard link: the previous file may
    // have been readable by others, and its secrets must not stay so in
    // the backup once the new file is private.
    let mut from = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut to = crate::private::create_new(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::io::copy(&mut from, &mut to).with_context(|| format!("cannot write {}", tmp.display()))?;
    to.sync_all()
        .with_context(|| format!("cannot fsync {}", tmp.display()))?;
    std::fs::rename(&tmp, &backup).with_context(|| format!("cannot write {}", backup.display()))?;
    Ok(backup)
}

/// Problems of the configuration that concern keys under `prefix`
/// (`servers[id=2]`, `sites[name=blog]`, `master`).
pub fn problems_under(e: &ConfigError, prefix: &str) -> Vec<Problem> {
    e.problems().into_iter().filter(|p| p.key.starts_with(prefix)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_comments_stays_above_what_is_added() {
        let text = "# header\n#host_id = \"x\"\n";
        let mut doc = comments_first(text.parse().unwrap());
        assert_eq!(doc.to_string(), format!("{text}\n"));
        doc.insert("mode", toml_edit::value("node"));
        assert_eq!(doc.to_string(), format!("{text}\nmode = \"node\"\n"));
        let mut t = toml_edit::Table::new();
        t.insert("id", toml_edit::value(1));
        doc.insert(
            "servers",
            toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::from_iter([t])),
        );
        assert!(doc.to_string().starts_with(text), "{doc}");
    }

    #[test]
    fn atomic_write_keeps_the_old_file_as_a_backup_and_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        assert_eq!(write_atomic(&p, b"one\n", false).unwrap(), None);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let bak = write_atomic(&p, b"two\n", false).unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        assert_eq!(std::fs::read_to_string(&bak).unwrap(), "one\n");
        assert_eq!(bak, dir.path().join("config.toml.bak"));
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        // A private file is 0600 whatever it was.
        write_atomic(&p, b"three\n", true).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&bak).unwrap(), "two\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
