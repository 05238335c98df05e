//! The env file as an editable list of lines. Only the lines of the
//! variables `configure` sets, renames or removes change; comments, blank
//! lines, other variables and lines it does not understand stay as they
//! were, in place. Values are read back with the loader's own parser
//! ([`crate::config::parse_env_text`]), and every value written is checked
//! to read back unchanged by it.

use crate::config::Secret;
use std::collections::BTreeMap;

#[derive(Clone, PartialEq, Eq)]
enum Line {
    /// `KEY=value` (perhaps `export KEY=…`, perhaps a quoted value over
    /// several lines): the whole text, without the last newline.
    Var { key: String, text: String },
    /// Anything else, as it was.
    Other(String),
}

/// An env file being edited.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvDoc {
    lines: Vec<Line>,
}

/// The values are keys and passwords: `{:?}` shows the variable names
/// only, so a stray debug print cannot leak them.
impl std::fmt::Debug for EnvDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Var { key, .. } => Some(key.as_str()),
                Line::Other(_) => None,
            })
            .collect();
        f.debug_struct("EnvDoc")
            .field("variables", &names)
            .field("lines", &self.lines.len())
            .finish()
    }
}

/// Why a value cannot be written to the env file.
#[derive(Debug, thiserror::Error)]
#[error(
    "the value of {key} cannot be written to an env file (it has a line break, or both a quote and characters that need quoting); put it in a file and use {key}_FILE"
)]
pub struct UnwritableValue {
    pub key: String,
}

impl EnvDoc {
    pub fn parse(text: &str) -> Self {
        if text.is_empty() {
            return Self::default();
        }
        let raw: Vec<&str> = text.strip_suffix('\n').unwrap_or(text).split('\n').collect();
        let mut lines = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let line = raw[i];
            match split_assignment(line) {
                Some((key, value)) => {
                    let key = key.to_string();
                    let mut whole = line.to_string();
                    let mut value = value.to_string();
                    while !quote_closed(&value) && i + 1 < raw.len() {
                        i += 1;
                        whole.push('\n');
                        whole.push_str(raw[i]);
                        value.push('\n');
                        value.push_str(raw[i]);
                    }
                    lines.push(Line::Var { key, text: whole });
                }
                None => lines.push(Line::Other(line.to_string())),
            }
            i += 1;
        }
        Self { lines }
    }

    /// A new file's text: a header, then what is set.
    pub fn new_file() -> Self {
        Self::parse(
            "# sitebackup environment, read by the systemd unit (EnvironmentFile=).\n\
             # Written by `sitebackup configure`; keep it mode 0600, owned by root: it holds storage keys.\n\
             # Values here override the TOML file, field by field. After editing: systemctl restart sitebackup\n",
        )
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Var { text, .. } | Line::Other(text) => out.push_str(text),
            }
            out.push('\n');
        }
        out
    }

    /// The variables as the loader reads them (`SITEBACKUP_*` and
    /// `S3_SERVER_*` only).
    pub fn vars(&self) -> Result<BTreeMap<String, String>, String> {
        crate::config::parse_env_text(self.render().as_bytes()).map(|f| f.vars)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::Var { key, .. } => Some(key.as_str()),
            Line::Other(_) => None,
        })
    }

    pub fn contains(&self, key: &str) -> bool {
        self.keys().any(|k| k == key)
    }

    /// Set `key` to a plain value: in place where it is set (later
    /// duplicates are removed, so every reader sees the same value), else
    /// after the last line of its group (`S3_SERVER_N_`), else at the end.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), UnwritableValue> {
        let text = format_assignment(key, value).ok_or_else(|| UnwritableValue { key: key.into() })?;
        let line = Line::Var {
            key: key.to_string(),
            text,
        };
        let at: Vec<usize> = (0..self.lines.len())
            .filter(|&i| matches!(&self.lines[i], Line::Var { key: k, .. } if k == key))
            .collect();
        if let Some((&first, later)) = at.split_first() {
            for &i in later.iter().rev() {
                self.lines.remove(i);
            }
            self.lines[first] = line;
            return Ok(());
        }
        let group = group_of(key);
        let anchor = group.and_then(|g| {
            self.lines
                .iter()
                .rposition(|l| matches!(l, Line::Var { key: k, .. } if group_of(k) == Some(g)))
        });
        match anchor {
            Some(i) => self.lines.insert(i + 1, line),
            None => {
                if matches!(self.lines.last(), Some(Line::Var { .. }))
                    || matches!(self.lines.last(), Some(Line::Other(t)) if !t.trim().is_empty())
                {
                    self.lines.push(Line::Other(String::new()));
                }
                self.lines.push(line);
            }
        }
        Ok(())
    }

    /// [`EnvDoc::set`] for a secret.
    pub fn set_secret(&mut self, key: &str, value: &Secret) -> Result<(), UnwritableValue> {
        self.set(key, value.expose())
    }

    /// Remove every line that sets `key`.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Var { key: k, .. } if k == key));
        self.lines.len() != before
    }

    /// Remove every variable `pred` picks.
    pub fn remove_where(&mut self, pred: impl Fn(&str) -> bool) {
        self.lines.retain(|l| !matches!(l, Line::Var { key, .. } if pred(key)));
    }

    /// Rename variables in place (their lines keep their position and
    /// value): `rename(old) -> Some(new)`.
    pub fn rename(&mut self, rename: impl Fn(&str) -> Option<String>) {
        for line in &mut self.lines {
            if let Line::Var { key, text } = line
                && let Some(new) = rename(key)
                && let Some(at) = text.find(key.as_str())
            {
                text.replace_range(at..at + key.len(), &new);
                *key = new;
            }
        }
    }
}

/// `KEY=value` → (`KEY`, `value`), allowing `export ` and blanks around.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    let t = t.strip_prefix("export ").map_or(t, str::trim_start);
    let (key, value) = t.split_once('=')?;
    let key = key.trim_end();
    let ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    ok.then_some((key, value.trim_start()))
}

/// Is a value that starts with a quote closed (on this line or the ones
/// joined to it)?
fn quote_closed(value: &str) -> bool {
    let mut chars = value.chars();
    match chars.next() {
        Some('\'') => chars.any(|c| c == '\''),
        Some('"') => {
            let mut escaped = false;
            for c in chars {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => return true,
                    _ => escaped = false,
                }
            }
            false
        }
        _ => true,
    }
}

/// `S3_SERVER_N_` for a server's variables.
fn group_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("S3_SERVER_")?;
    let (num, _) = rest.split_once('_')?;
    Some(&key[..("S3_SERVER_".len() + num.len() + 1)])
}

/// `KEY="value"` as the seed writes it when the value needs no escaping,
/// `KEY='value'` when it holds characters a double-quoted value would
/// interpret (`$`, `\`, `"`), and `None` when neither reads back as the
/// value (a line break; both `'` and such characters).
fn format_assignment(key: &str, value: &str) -> Option<String> {
    if value.contains(['\n', '\r', '\0']) {
        return None;
    }
    let plain = value
        .chars()
        .all(|c| !c.is_control() && !matches!(c, '$' | '\\' | '"' | '\'' | '`'));
    let text = if plain {
        format!("{key}=\"{value}\"")
    } else if !value.contains('\'') {
        format!("{key}='{value}'")
    } else {
        return None;
    };
    // The loader must read exactly this value back.
    let back: Vec<(String, String)> = dotenvy::from_read_iter(format!("{text}\n").as_bytes())
        .collect::<Result<_, _>>()
        .ok()?;
    (back == [(key.to_string(), value.to_string())]).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# hand-written: do not remove\n\
        S3_SERVER_1_ENDPOINT=\"a.example\"\n\
        S3_SERVER_1_SECRET_KEY='x$y'\n\
        \n\
        # second server\n\
        export S3_SERVER_2_ENDPOINT=b.example\n\
        S3_SERVER_2_NOTE=\"two\n\
        lines\"\n\
        RUST_LOG=debug\n";

    #[test]
    fn unchanged_text_round_trips() {
        assert_eq!(EnvDoc::parse(SAMPLE).render(), SAMPLE);
        let odd = "  export  A = 1 \nnot an assignment\n\tB='x\n";
        assert_eq!(EnvDoc::parse(odd).render(), odd);
        assert_eq!(EnvDoc::parse("").render(), "");
        assert_eq!(EnvDoc::parse("A=1").render(), "A=1\n");
    }

    #[test]
    fn set_replaces_in_place_or_appends_to_its_group() {
        let mut doc = EnvDoc::parse(SAMPLE);
        doc.set("S3_SERVER_1_ENDPOINT", "c.example").unwrap();
        doc.set("S3_SERVER_1_BUCKET", "bkt").unwrap();
        doc.set("SITEBACKUP_HOST_ID", "web1").unwrap();
        let text = doc.render();
        assert!(text.starts_with(
            "# hand-written: do not remove\nS3_SERVER_1_ENDPOINT=\"c.example\"\nS3_SERVER_1_SECRET_KEY='x$y'\nS3_SERVER_1_BUCKET=\"bkt\"\n\n# second server\n"
        ), "{text}");
        assert!(
            text.ends_with("RUST_LOG=debug\n\nSITEBACKUP_HOST_ID=\"web1\"\n"),
            "{text}"
        );
        let vars = doc.vars().unwrap();
        assert_eq!(vars["S3_SERVER_1_SECRET_KEY"], "x$y");
        assert_eq!(vars["S3_SERVER_2_NOTE"], "two\nlines");
    }

    #[test]
    fn duplicates_collapse_to_the_first_place() {
        let mut doc = EnvDoc::parse("A=1\n# c\nS3_SERVER_1_REGION=x\nS3_SERVER_1_REGION=y\n");
        doc.set("S3_SERVER_1_REGION", "z").unwrap();
        assert_eq!(doc.render(), "A=1\n# c\nS3_SERVER_1_REGION=\"z\"\n");
    }

    #[test]
    fn values_read_back_exactly_or_are_refused() {
        let mut doc = EnvDoc::default();
        for v in ["plain/+=", "with $dollar", "back\\slash", "q\"uote", "sp ace"] {
            doc.set("S3_SERVER_1_SECRET_KEY", v).unwrap();
            assert_eq!(doc.vars().unwrap()["S3_SERVER_1_SECRET_KEY"], v, "{v}");
        }
        for v in ["line\nbreak", "both ' and $"] {
            let e = doc.set("S3_SERVER_1_SECRET_KEY", v).unwrap_err().to_string();
            assert!(e.contains("S3_SERVER_1_SECRET_KEY_FILE") && !e.contains(v), "{e}");
        }
    }

    #[test]
    fn remove_and_rename_keep_other_lines() {
        let mut doc = EnvDoc::parse(SAMPLE);
        doc.remove_where(|k| k.starts_with("S3_SERVER_1_"));
        doc.rename(|k| k.strip_prefix("S3_SERVER_2_").map(|f| format!("S3_SERVER_1_{f}")));
        let text = doc.render();
        assert_eq!(
            text,
            "# hand-written: do not remove\n\n# second server\nexport S3_SERVER_1_ENDPOINT=b.example\nS3_SERVER_1_NOTE=\"two\nlines\"\nRUST_LOG=debug\n"
        );
    }

    #[test]
    fn debug_shows_names_not_values() {
        let doc = EnvDoc::parse("# note with-comment-token\nS3_SERVER_1_SECRET_KEY=hunter2-secret\n");
        let shown = format!("{doc:?}");
        assert!(shown.contains("S3_SERVER_1_SECRET_KEY"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("with-comment-token"),
            "{shown}"
        );
    }
}
