//! Which entries of a site a backup leaves out: `.gitignore` rules, matched
//! by ripgrep's `ignore` crate (its gitignore builder), so that a pattern
//! means what it means to git: `wp-content/cache/` matches that directory,
//! a bare `cache` matches at any depth unless anchored with a leading `/`,
//! `**` spans directories, `!pattern` re-includes, and nothing under an
//! excluded directory can be re-included (the walk never enters it).
//!
//! The rules come from three places, lowest precedence first (a later rule
//! wins over an earlier one, as in a `.gitignore`):
//! 1. the site's own `.sitebackupignore` ([`SITE_IGNORE_FILE`]), read from
//!    the site root when a backup starts;
//! 2. the operator's `exclude_file`, read with the configuration;
//! 3. the operator's `exclude` list in the configuration.
//!
//! So the operator always has the last word: a `!pattern` in the site's
//! file cannot bring back what the configuration excludes. The site file is
//! written by the web user (see docs/threat-model.md): it is opened without
//! following a symlink, must be a regular file of at most
//! [`MAX_SITE_IGNORE_BYTES`], and a bad line in it is a warning, not a
//! failed backup. This module reads files only; it never writes.

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The per-site ignore file, at the site root.
pub const SITE_IGNORE_FILE: &str = ".sitebackupignore";
/// Largest `.sitebackupignore` read; a bigger one is skipped with a warning.
pub const MAX_SITE_IGNORE_BYTES: u64 = 256 * 1024;
/// Largest `exclude_file` read.
pub const MAX_EXCLUDE_FILE_BYTES: u64 = 1024 * 1024;
/// Longest piece of a rule or name quoted in a message.
const MAX_QUOTED: usize = 200;

/// Where a rule was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// The `exclude` list of the site's configuration.
    Config,
    /// The site's `exclude_file`.
    ExcludeFile(PathBuf),
}

impl RuleSource {
    /// `exclude`, or the exclude file's path.
    pub fn label(&self) -> String {
        match self {
            RuleSource::Config => "exclude".to_string(),
            RuleSource::ExcludeFile(p) => p.display().to_string(),
        }
    }
}

/// The operator's rules of one site (`exclude` and `exclude_file`),
/// checked: every line compiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludeRules {
    /// In precedence order (the exclude file's lines, then `exclude`).
    rules: Vec<(RuleSource, String)>,
}

impl ExcludeRules {
    /// Check and take `lines` from `source`. Comments and blank lines are
    /// kept (they match nothing). Returns one message per bad line.
    pub fn add<'a>(&mut self, source: RuleSource, lines: impl IntoIterator<Item = &'a str>) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut probe = GitignoreBuilder::new("/");
        for (i, line) in lines.into_iter().enumerate() {
            match probe.add_line(None, line) {
                Ok(_) => self.rules.push((source.clone(), line.to_string())),
                Err(e) => problems.push(format!("line {}: {:?}: {}", i + 1, quote(line), cause(&e))),
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The text of a rules file (an `exclude_file`): a regular file of at most
/// [`MAX_EXCLUDE_FILE_BYTES`], in UTF-8.
pub fn read_rules_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    read_bounded(file, MAX_EXCLUDE_FILE_BYTES).map_err(|e| format!("{}: {e}", path.display()))
}

/// At most `max` bytes of UTF-8 text from `r`.
fn read_bounded(r: impl Read, max: u64) -> Result<String, String> {
    let mut data = Vec::new();
    r.take(max + 1).read_to_end(&mut data).map_err(|e| e.to_string())?;
    if data.len() as u64 > max {
        return Err(format!("larger than the limit of {max} bytes"));
    }
    String::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())
}

/// What excluded an entry: the rule as written, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExcludedBy<'a> {
    pub pattern: &'a str,
    /// `None`: the configuration's `exclude`; else the file it came from.
    pub file: Option<&'a Path>,
}

impl ExcludedBy<'_> {
    /// `exclude`, `.sitebackupignore` or the exclude file's path.
    pub fn source_label(&self) -> String {
        match self.file {
            None => "exclude".to_string(),
            Some(f) => f.display().to_string(),
        }
    }
}

/// A compiled matcher for one walk of a site.
#[derive(Debug, Clone)]
pub struct Excludes {
    matcher: Gitignore,
}

impl Default for Excludes {
    fn default() -> Self {
        Self::none()
    }
}

impl Excludes {
    /// Leaves nothing out.
    pub fn none() -> Self {
        Self {
            matcher: Gitignore::empty(),
        }
    }

    /// The matcher for a backup of the site at `root`: its
    /// `.sitebackupignore` (if any), then `rules`. Problems with the site's
    /// file are warnings (the file, or its bad lines, are skipped).
    pub fn for_site(root: &Path, rules: &ExcludeRules) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let site_lines = match read_site_file(root) {
            Ok(text) => text,
            Err(w) => {
                warnings.extend(w);
                None
            }
        };
        let mut builder = GitignoreBuilder::new(root);
        let site_file = root.join(SITE_IGNORE_FILE);
        for (i, line) in site_lines.as_deref().unwrap_or("").lines().enumerate() {
            if let Err(e) = builder.add_line(Some(site_file.clone()), line) {
                warnings.push(format!(
                    "{}: line {} skipped: {:?}: {}",
                    site_file.display(),
                    i + 1,
                    quote(line),
                    cause(&e)
                ));
            }
        }
        for (source, line) in &rules.rules {
            let from = match source {
                RuleSource::Config => None,
                RuleSource::ExcludeFile(p) => Some(p.clone()),
            };
            // Checked when the configuration was loaded.
            let _ = builder.add_line(from, line);
        }
        match builder.build() {
            Ok(matcher) => (Self { matcher }, warnings),
            Err(e) => {
                // Only a glob set too big to compile gets here.
                warnings.push(format!(
                    "the exclude rules could not be compiled ({e}); nothing is excluded"
                ));
                (Self::none(), warnings)
            }
        }
    }

    /// Matcher for `lines` alone (tests and tools).
    pub fn from_lines<'a>(root: &Path, lines: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut builder = GitignoreBuilder::new(root);
        for line in lines {
            builder.add_line(None, line).map_err(|e| cause(&e))?;
        }
        builder
            .build()
            .map(|matcher| Self { matcher })
            .map_err(|e| e.to_string())
    }

    /// The rule that excludes `rel` (a path relative to the site root), if
    /// one does. `is_dir` is true for a directory (not for a symlink to
    /// one). The caller does not descend into an excluded directory.
    pub fn matched(&self, rel: &Path, is_dir: bool) -> Option<ExcludedBy<'_>> {
        match self.matcher.matched(rel, is_dir) {
            Match::Ignore(glob) => Some(ExcludedBy {
                pattern: glob.original(),
                file: glob.from(),
            }),
            Match::None | Match::Whitelist(_) => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.matcher.is_empty()
    }
}

/// The site's `.sitebackupignore`: `Ok(None)` when there is none, `Err`
/// with warnings when it cannot be used.
fn read_site_file(root: &Path) -> Result<Option<String>, Vec<String>> {
    use rustix::fs::{FileType, Mode, OFlags};
    let path = root.join(SITE_IGNORE_FILE);
    let skipped = |why: String| vec![format!("{}: {why}; the file is ignored", path.display())];
    // No symlink followed out of the site; O_NONBLOCK so that a FIFO
    // cannot hold the backup up (it is refused below).
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::open(&path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => return Err(skipped("it is a symlink, which is not followed".into())),
        Err(e) => return Err(skipped(format!("cannot open it: {}", io::Error::from(e)))),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| skipped(format!("cannot stat it: {}", io::Error::from(e))))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(skipped("it is not a regular file".into()));
    }
    let file = std::fs::File::from(fd);
    read_bounded(file, MAX_SITE_IGNORE_BYTES).map(Some).map_err(skipped)
}

/// The glob error alone (the `ignore` error repeats the glob).
fn cause(e: &ignore::Error) -> String {
    match e {
        ignore::Error::Glob { err, .. } => err.clone(),
        other => other.to_string(),
    }
}

/// `s` cut to [`MAX_QUOTED`] characters.
fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_QUOTED).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[path = "exclude_tests.rs"]
mod tests;
