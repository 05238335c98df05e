//! `ls ARCHIVE [PATH]`: the entries of an archive, read by streaming it
//! (download → SHA-256 → zstd → tar headers; nothing is written to disk),
//! optionally only those at or under PATH. Human output is one line per
//! entry like `tar -tv` (permissions, uid/gid, size, mtime in UTC, path);
//! `--json` is one document with the archive and its entries.
//!
//! The whole object is read either way, so its checksum is compared with
//! the recorded ones: a listing of a damaged archive ends in an error
//! (exit 1) after the lines already printed.

use super::UsageError;
use crate::archive::extract::{self, ListedEntry, Selection};
use crate::catalog::Catalog;
use crate::cli::LsArgs;
use crate::config::Config;
use crate::restore::{self, DownloadProgress, Reference};
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;

/// Most entries `--json` holds (the document is printed whole, about
/// 250 bytes of memory per entry); the text output streams and has no such
/// limit.
const MAX_JSON_ENTRIES: usize = 1_000_000;

#[derive(Serialize)]
struct Listing<'a> {
    id: Option<i64>,
    key: &'a str,
    server_id: u32,
    size_bytes: u64,
    sha256: &'a str,
    /// The recorded checksums the download matched.
    checked_against: &'a [Reference],
    /// Entries in the archive, and how many are listed.
    entries_read: u64,
    entries: Vec<ListedEntry>,
    warnings: &'a [String],
}

pub async fn run(config: &Config, args: &LsArgs, json: bool) -> anyhow::Result<u8> {
    let mut selection = match &args.path {
        Some(p) => Selection::under(std::slice::from_ref(p)).map_err(|e| UsageError(format!("PATH: {e}")))?,
        None => Selection::all(),
    };
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let source = crate::node::read_source(config, &catalog);
    let located = restore::locate(source.as_ref(), &catalog, &args.archive).await?;
    let (refs, mut warnings) = restore::references(&located).await;
    if refs.is_empty() {
        warnings.push(format!(
            "no recorded checksum for {} (no catalog row, no {} object): the listing cannot be proven to come from an intact archive",
            located.key,
            crate::storage::sidecar_key(&located.key)
        ));
    }
    let cancel = super::restore::interrupt_token();
    let progress = DownloadProgress::default();
    let limits = config.restore.limits();
    let downloaded = restore::download_through(located.store.as_ref(), &located.key, &progress, &cancel, move |r| {
        let mut entries = Vec::new();
        let mut out = std::io::stdout().lock();
        let mut closed = false;
        let mut too_many = false;
        let summary = extract::list(r, &limits, &mut selection, |e| {
            if json {
                if entries.len() < MAX_JSON_ENTRIES {
                    entries.push(e);
                } else {
                    too_many = true;
                }
            } else if !closed {
                // A closed pipe (`ls … | head`) stops the output, not the
                // read: the checksum still needs every byte.
                closed = writeln!(out, "{}", tar_line(&e)).is_err();
            }
        })?;
        let _ = out.flush();
        Ok((summary, entries, selection.unmatched(), too_many))
    })
    .await?;
    let (summary, entries, unmatched, too_many) = downloaded
        .result
        .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", located.key))?;
    if !downloaded.complete {
        anyhow::bail!("cannot list {}: the download ended early", located.key);
    }
    if let Some(e) = restore::mismatch(&located.key, &refs, &downloaded.sha256) {
        anyhow::bail!("{e}; do not trust the listing");
    }
    if !unmatched.is_empty() {
        anyhow::bail!(
            "nothing in {} at {}; paths are as `sitebackup ls ARCHIVE` shows them, e.g. files/wp-config.php",
            located.key,
            unmatched.join(", ")
        );
    }
    if too_many {
        anyhow::bail!(
            "{} has more than {MAX_JSON_ENTRIES} entries to list: too many for one --json document; \
             give a PATH, or use the text output, which streams",
            located.key
        );
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if json {
        super::print_json(&Listing {
            id: located.row.as_ref().map(|r| r.id),
            key: &located.key,
            server_id: located.server.id,
            size_bytes: downloaded.bytes,
            sha256: &downloaded.sha256,
            checked_against: &refs,
            entries_read: summary.entries,
            entries,
            warnings: &warnings,
        });
    }
    Ok(0)
}

/// `drwxr-xr-x 33/33          0 2024-12-25 08:30 files/wp-content/`, as
/// `tar -tv` prints it (numeric owner, UTC), with control characters in
/// names escaped so that a name cannot rewrite the terminal.
fn tar_line(e: &ListedEntry) -> String {
    let owner = match (e.uid, e.gid) {
        (Some(u), Some(g)) => format!("{u}/{g}"),
        _ => "?/?".to_string(),
    };
    let when = e.mtime.get(..16).unwrap_or(&e.mtime).replace('T', " ");
    let mut line = format!(
        "{} {owner:<11} {:>12} {when} {}",
        e.permissions,
        e.size,
        escape(&e.path)
    );
    if let Some(link) = &e.link {
        line.push_str(if e.kind == "hardlink" { " link to " } else { " -> " });
        line.push_str(&escape(link));
    }
    line
}

fn escape(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_tar_tv_and_escape_control_characters() {
        let e = ListedEntry {
            path: "files/a\u{1b}[2Jb".into(),
            kind: "symlink",
            mode: 0o777,
            permissions: "lrwxrwxrwx".into(),
            uid: Some(33),
            gid: Some(33),
            size: 0,
            mtime: "2024-12-25T08:30:00Z".into(),
            link: Some("../x\n".into()),
        };
        assert_eq!(
            tar_line(&e),
            "lrwxrwxrwx 33/33                  0 2024-12-25 08:30 files/a\\u{1b}[2Jb -> ../x\\n"
        );
    }
}
