//! `restore ARCHIVE --to DIR`: find the archive, stream it through SHA-256,
//! zstd and safe tar extraction into DIR (see [`crate::restore`] for what a
//! failure leaves behind).
//!
//! `--with-db` imports the dump, and the command line alone says where:
//! `--db-name NAME` (a new or empty database) or `--overwrite-live-db` (the
//! configured database of the archive's site, the site coming from the
//! catalog row or `--site`). Nothing in the archive — its manifest's site
//! or dump path — chooses a database or a file to import.

use crate::archive::extract::ExtractOptions;
use crate::catalog::Catalog;
use crate::cli::RestoreArgs;
use crate::config::{Config, SiteConfig};
use crate::database::{self, DbSettings, ImportInto};
use crate::restore::{self, DownloadProgress, RestoreOptions, RestoreReport};
use anyhow::Context;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// `--with-db` alone: nothing says which database to fill.
const WITH_DB_NEEDS_TARGET: &str = "--with-db needs to be told which database receives the dump: \
--db-name NAME creates and fills a new database NAME (an existing one must be empty), or \
--overwrite-live-db replaces the tables of the archive's site's live database as configured on this host \
(with --site SITE when restoring by key on a host whose catalog does not know the archive)";

/// A usage error: printed, exit 2.
fn usage(json: bool, message: &str) -> u8 {
    if json {
        super::print_json(&serde_json::json!({ "error": message }));
    }
    eprintln!("error: {message}");
    crate::EXIT_CONFIG
}

pub async fn run(config: &Config, args: &RestoreArgs, json: bool, show_bar: bool) -> anyhow::Result<u8> {
    if args.with_db && args.db_name.is_none() && !args.overwrite_live_db {
        return Ok(usage(json, WITH_DB_NEEDS_TARGET));
    }
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let source = crate::node::read_source(config, &catalog);
    let located = restore::locate(source.as_ref(), &catalog, &args.archive).await?;
    // Where the dump goes is settled before anything is downloaded.
    let plan = if args.with_db {
        let row_site = located.row.as_ref().map(|r| r.site.as_str());
        match import_plan(config, args, row_site) {
            Ok(plan) => Some(plan),
            Err(message) => return Ok(usage(json, &message)),
        }
    } else {
        None
    };
    let cancel = interrupt_token();
    let progress = Arc::new(DownloadProgress::default());
    let bar = show_bar.then(|| super::progress::download_bar(&located.key, progress.clone()));
    let opts = RestoreOptions {
        extract: ExtractOptions::for_current_user().with_limits(config.restore.limits()),
        keep_partial: args.keep_partial,
    };
    let result = restore::restore_to(&located, &args.to, opts, &progress, &cancel).await;
    if let Some(bar) = bar {
        bar.finish();
    }
    let report = result?;
    let import = match plan {
        Some(plan) => Some(import_database(plan, &report).await?),
        None => None,
    };
    if json {
        let mut doc = serde_json::to_value(&report)?;
        if let (Some(obj), Some(import)) = (doc.as_object_mut(), &import) {
            obj.insert("database_import".into(), serde_json::to_value(import)?);
        }
        super::print_json(&doc);
    } else {
        print_report(&report);
        if let Some(i) = &import {
            println!(
                "  imported {} into database {}{} with {} in {:.1}s",
                super::mb(i.bytes),
                i.database,
                if i.created { " (created)" } else { "" },
                i.tool,
                i.duration_secs
            );
        }
    }
    Ok(0)
}

/// Where `--with-db` imports, and with which credentials.
struct ImportPlan {
    into: ImportInto,
    /// `None`: from the restored `files/wp-config.php` (a host where the
    /// archive's site is not configured, with `--db-name`).
    settings: Option<DbSettings>,
}

/// Decide the import from the command line and the catalog row's site
/// (`row_site`); an `Err` is a usage error.
fn import_plan(config: &Config, args: &RestoreArgs, row_site: Option<&str>) -> Result<ImportPlan, String> {
    let site_name = match (row_site, args.site.as_deref()) {
        (Some(row), Some(given)) if row != given => {
            return Err(format!(
                "--site {given}: the catalog records this archive as a backup of site {row}"
            ));
        }
        (Some(row), _) => Some(row),
        (None, given) => given,
    };
    let configured = |name: &str| -> Result<&SiteConfig, String> {
        config.site(name).ok_or_else(|| {
            format!(
                "site {name} is not configured on this host; --overwrite-live-db imports only into a configured site's database (use --db-name NAME for a new one)"
            )
        })
    };
    let site_settings = |site: &SiteConfig| -> Result<DbSettings, String> {
        database::resolve(&site.path, site.database.as_ref())
            .map_err(|e| format!("cannot work out the database of site {}: {e}", site.name))?
            .ok_or_else(|| {
                format!(
                    "site {} has no database (no [sites.database] section and no wp-config.php, or enabled = false)",
                    site.name
                )
            })
    };
    if let Some(name) = &args.db_name {
        crate::config::check_db_name(name).map_err(|e| format!("--db-name: {e}"))?;
        // The configured site's credentials, else (a fresh host) those of
        // the restored wp-config.php.
        let settings = site_name
            .and_then(|n| config.site(n))
            .and_then(|site| site_settings(site).ok());
        return Ok(ImportPlan {
            into: ImportInto::New(name.clone()),
            settings,
        });
    }
    let Some(site_name) = site_name else {
        return Err(
            "--overwrite-live-db: the catalog has no row for this archive, so its site is unknown; name it with --site SITE"
                .into(),
        );
    };
    let settings = site_settings(configured(site_name)?)?;
    Ok(ImportPlan {
        into: ImportInto::Live,
        settings: Some(settings),
    })
}

/// `--with-db`: import `database/<name>.sql` of the restored tree (opened
/// without following symlinks, see [`restore::open_dump`]) as `plan` says.
async fn import_database(plan: ImportPlan, report: &RestoreReport) -> anyhow::Result<database::ImportReport> {
    let name = restore::dump_name(report.manifest.as_ref(), &report.database_dumps)
        .with_context(|| format!("--with-db: archive {}", report.key))?;
    let file = restore::open_dump(&report.target, &name).context("--with-db")?;
    let settings = match plan.settings {
        Some(s) => s,
        None => {
            let files = report.target.join("files");
            let wp = files.join("wp-config.php");
            if !std::fs::symlink_metadata(&wp).is_ok_and(|m| m.is_file()) {
                anyhow::bail!(
                    "--with-db: the archive's site is not configured on this host and the restored {} is not a regular file, so there are no credentials to connect with; configure the site (or pass --site SITE)",
                    wp.display()
                );
            }
            database::resolve(&files, None)
                .context("--with-db: cannot work out the database settings")?
                .ok_or_else(|| anyhow::anyhow!("--with-db: no database settings in the restored wp-config.php"))?
        }
    };
    let into = plan.into;
    let import = tokio::task::spawn_blocking(move || database::import_dump(&settings, file, &into))
        .await
        .context("--with-db: the import task failed")?
        .context("--with-db: database import failed")?;
    Ok(import)
}

fn print_report(r: &RestoreReport) {
    let id = r.id.map(|id| format!(" (#{id})")).unwrap_or_default();
    println!("Restored {}{id} from {} into {}", r.key, r.server, r.target.display());
    println!(
        "  {} files, {} directories, {} symlinks, {} hard links; {} of files",
        r.stats.files,
        r.stats.dirs,
        r.stats.symlinks,
        r.stats.hardlinks,
        super::mb(r.stats.file_bytes)
    );
    let against: Vec<&str> = r.checked_against.iter().map(|c| c.describe()).collect();
    if against.is_empty() {
        println!(
            "  archive {} sha256={} (NOT checked: no recorded checksum)",
            super::mb(r.size_bytes),
            r.sha256
        );
    } else {
        println!(
            "  archive {} sha256={} matches the {}",
            super::mb(r.size_bytes),
            r.sha256,
            against.join(" and ")
        );
    }
    for dump in &r.database_dumps {
        println!("  database dump: {}", dump.display());
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
    println!("  took {:.1}s", r.duration_secs);
}

/// A token cancelled by Ctrl-C, so a download stops cleanly and the
/// partial tree is cleaned up.
pub(super) fn interrupt_token() -> CancellationToken {
    crate::signals::cancel_on_interrupt("Interrupted: stopping the download.")
}
