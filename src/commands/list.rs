//! `list`: archives in the catalog, with their marking: `suspect` (the
//! backup looked wrong) or `corrupt` (a verify proved damage).

use crate::catalog::{Catalog, Condition, ListFilter, VerifyOutcome};
use crate::cli::ListArgs;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct ListEntry<'a> {
    id: i64,
    site: &'a str,
    server_id: i64,
    endpoint: &'a str,
    bucket: &'a str,
    key: &'a str,
    size_bytes: u64,
    sha256: Option<&'a str>,
    created_at: &'a str,
    status: &'a str,
    /// `clean`, `suspect` or `corrupt`: what retention makes of it.
    condition: Condition,
    /// `empty_site` or `shrunk`, with the backup's warning.
    suspect: Option<&'a str>,
    suspect_reason: Option<&'a str>,
    verified_at: Option<&'a str>,
    /// `ok`, `corrupt` or `inconclusive`.
    verify: Option<VerifyOutcome>,
    verify_error: Option<&'a str>,
    /// `verify == "ok"`, for scripts written before `verify` existed.
    verify_ok: Option<bool>,
}

/// `configured`: the site names of the config, when it loads.
pub fn run(state_dir: &Path, configured: Option<&[String]>, args: &ListArgs, json: bool) -> anyhow::Result<u8> {
    let catalog = Catalog::open(state_dir)?;
    let rows = catalog.list(&ListFilter {
        site: args.site.clone(),
        server_id: args.server,
        all_statuses: args.all,
    })?;
    // `list` reads the catalog only (a broken config must not hide the
    // archives), so a site is known when the catalog ever saw it.
    if let Some(site) = &args.site
        && rows.is_empty()
        && !configured.is_some_and(|names| names.contains(site))
        && catalog
            .list(&ListFilter {
                site: Some(site.clone()),
                server_id: None,
                all_statuses: true,
            })?
            .is_empty()
    {
        return Err(super::UsageError(match configured {
            Some(names) => format!(
                "unknown site {site:?}; configured: {}, and the catalog has no archive of it",
                names.join(", ")
            ),
            None => format!("unknown site {site:?}: the catalog has no archive of it"),
        })
        .into());
    }
    if json {
        let entries: Vec<ListEntry<'_>> = rows
            .iter()
            .map(|r| ListEntry {
                id: r.id,
                site: &r.site,
                server_id: r.server_id,
                endpoint: &r.endpoint,
                bucket: &r.bucket,
                key: &r.key,
                size_bytes: r.size_bytes,
                sha256: r.sha256.as_deref(),
                created_at: &r.created_at,
                status: r.status.as_str(),
                condition: r.condition(),
                suspect: r.suspect.map(|c| c.as_str()),
                suspect_reason: r.suspect_reason.as_deref(),
                verified_at: r.verified_at.as_deref(),
                verify: r.verify_outcome,
                verify_error: r.verify_error.as_deref(),
                verify_ok: r.verify_outcome.map(|v| v == VerifyOutcome::Ok),
            })
            .collect();
        super::print_json(&entries);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("No archives in the catalog.");
        return Ok(0);
    }
    println!(
        "{:>5}  {:<20}  {:>6}  {:<9}  {:<7}  {:>12}  {:<20}  {:<23}  KEY",
        "ID", "SITE", "SERVER", "STATUS", "MARK", "SIZE", "CREATED", "VERIFIED"
    );
    for r in &rows {
        let (mark, why) = match r.condition() {
            Condition::Clean => ("", None),
            Condition::Suspect => ("suspect", r.suspect_reason.as_deref()),
            Condition::Corrupt => ("corrupt", r.verify_error.as_deref()),
        };
        println!(
            "{:>5}  {:<20}  {:>6}  {:<9}  {:<7}  {:>12}  {:<20}  {:<23}  {}",
            r.id,
            r.site,
            r.server_id,
            r.status,
            mark,
            super::mb(r.size_bytes),
            r.created_at,
            verified(r),
            r.key
        );
        if let Some(why) = why {
            println!("{:>7}{mark}: {why}", "");
        }
    }
    Ok(0)
}

/// `ok 2026-12-02T10:00:00Z`, `corrupt …`, `inconclusive …`, or `never`.
fn verified(r: &crate::catalog::ArchiveRow) -> String {
    match (r.verify_outcome, r.verified_at.as_deref()) {
        (Some(outcome), Some(at)) => format!("{outcome} {}", at.get(..20).unwrap_or(at)),
        (Some(outcome), None) => outcome.to_string(),
        (None, _) => "never".to_string(),
    }
}
