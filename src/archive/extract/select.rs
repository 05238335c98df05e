//! Which entries a partial restore (`restore --include PATH`) writes, and
//! which `ls ARCHIVE PATH` shows: the entries at or under one of the given
//! archive paths (`files/wp-config.php`, `files/wp-content/uploads`),
//! compared component by component. Everything else is still read (and
//! hashed by the caller), just not written.

use super::{SafePath, display, sanitize_path};

/// The archive paths asked for, and which of them matched an entry.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `None`: everything.
    paths: Option<Vec<(SafePath, String, bool)>>,
    /// Also take the directories on the way to a selected path (a restore
    /// wants their modes and mtimes; a listing does not show them).
    ancestors: bool,
    /// Also take `manifest.json` (a restore reports from it).
    manifest: bool,
}

impl Selection {
    /// Every entry.
    pub fn all() -> Self {
        Self::default()
    }

    /// The entries at or under `paths` (archive paths as `ls` shows them;
    /// a trailing `/` is fine). An unsafe path (absolute, `..`) is refused.
    pub fn under<S: AsRef<str>>(paths: &[S]) -> Result<Self, String> {
        let mut out = Vec::new();
        for raw in paths {
            let raw = raw.as_ref();
            let path = sanitize_path(raw.as_bytes()).map_err(|p| {
                format!(
                    "{:?} is not an archive path ({p}); use paths as `sitebackup ls` shows them, e.g. files/wp-config.php",
                    display(raw.as_bytes())
                )
            })?;
            if path.is_root() {
                return Err(format!("{:?} names no entry", display(raw.as_bytes())));
            }
            out.push((path, raw.to_string(), false));
        }
        Ok(Self {
            paths: Some(out),
            ..Self::default()
        })
    }

    /// Also take the directories leading to each path, and `manifest.json`
    /// (for a restore).
    pub fn for_restore(self) -> Self {
        Self {
            ancestors: true,
            manifest: true,
            ..self
        }
    }

    pub fn is_all(&self) -> bool {
        self.paths.is_none()
    }

    /// Does the selection take the entry at `path`? Marks the path that
    /// matched.
    pub fn wants(&mut self, path: &SafePath, is_dir: bool) -> bool {
        let Some(paths) = &mut self.paths else {
            return true;
        };
        let comps = path.components();
        if self.manifest && comps.len() == 1 && comps[0] == "manifest.json" {
            return true;
        }
        let mut wanted = false;
        for (want, _, matched) in paths.iter_mut() {
            let w = want.components();
            if comps.starts_with(w) {
                *matched = true;
                wanted = true;
            } else if self.ancestors && is_dir && w.starts_with(comps) {
                wanted = true;
            }
        }
        wanted
    }

    /// The paths, as given, that matched no entry.
    pub fn unmatched(&self) -> Vec<String> {
        self.paths
            .iter()
            .flatten()
            .filter(|(_, _, matched)| !matched)
            .map(|(_, raw, _)| display(raw.as_bytes()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SafePath {
        sanitize_path(s.as_bytes()).unwrap()
    }

    #[test]
    fn takes_entries_under_a_path_by_component() {
        let mut s = Selection::under(&["files/wp-content/uploads/", "files/wp-config.php"]).unwrap();
        assert!(s.wants(&p("files/wp-content/uploads"), true));
        assert!(s.wants(&p("files/wp-content/uploads/2024/a.jpg"), false));
        assert!(!s.wants(&p("files/wp-content/uploads2/a.jpg"), false));
        assert!(!s.wants(&p("files/wp-content"), true), "no ancestors in a listing");
        assert!(!s.wants(&p("manifest.json"), false));
        assert_eq!(s.unmatched(), vec!["files/wp-config.php".to_string()]);
        assert!(s.wants(&p("files/wp-config.php"), false));
        assert!(s.unmatched().is_empty());
    }

    #[test]
    fn a_restore_also_takes_ancestors_and_the_manifest() {
        let mut s = Selection::under(&["files/a/b"]).unwrap().for_restore();
        assert!(s.wants(&p("files"), true));
        assert!(s.wants(&p("files/a"), true));
        assert!(
            !s.wants(&p("files/a"), false),
            "a file where a directory leads is not an ancestor"
        );
        assert!(!s.wants(&p("files/c"), true));
        assert!(s.wants(&p("manifest.json"), false));
        assert_eq!(s.unmatched(), vec!["files/a/b".to_string()], "ancestors match nothing");
    }

    #[test]
    fn unsafe_or_empty_paths_are_refused() {
        for bad in ["/etc/passwd", "files/../x", "", "./"] {
            assert!(Selection::under(&[bad]).is_err(), "{bad:?}");
        }
        assert!(Selection::all().wants(&p("anything"), false));
    }
}
