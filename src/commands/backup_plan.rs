//! `backup --dry-run`: what a backup of each site would do, and nothing of
//! it. For each site: the walk with the site's excludes (files, bytes, what
//! each rule leaves out), the database that would be dumped (not dumped),
//! the hooks that would run (not run), the size estimate, and the servers
//! in the order of trial with the decision the backup would make for each:
//! skipped for room ([`plan_servers`], the code the backup uses), and of
//! the others the first that answers a read-only check is the one chosen.
//!
//! Writes nothing: no lock, no catalog row (a missing catalog is not
//! created; usage then reads as 0), no upload, no marker, no hook, no dump.
//! In node mode the master picks the provider when a backup leases
//! credentials, so the servers are not asked. Exit 1 when some site's
//! backup would fail (its directory is missing, or no server would take
//! it).

use super::{mb, print_json};
use crate::archive::{self, Excludes, SourceSurvey};
use crate::catalog::Catalog;
use crate::cli::BackupArgs;
use crate::config::{Config, SiteConfig};
use crate::pipeline::{Choice, ServerSlot, estimate_bytes, plan_servers};
use crate::storage::{ConfigSource, Purpose, ServerSource};
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Serialize)]
struct SitePlan {
    site: String,
    path: std::path::PathBuf,
    /// `None` when the site directory is missing.
    source: Option<SourceSurvey>,
    database: DatabasePlan,
    hooks: HookCounts,
    estimate_bytes: u64,
    /// How the estimate was made.
    estimate_basis: String,
    servers: Vec<ServerDecision>,
    /// The server the backup would store the archive on.
    chosen_server: Option<u32>,
    /// Why the backup would fail, if it would.
    error: Option<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DatabasePlan {
    /// The backup would dump it (a dry run does not).
    would_dump: bool,
    name: Option<String>,
    address: Option<String>,
    /// `[sites.database]` or the wp-config.php it was read from.
    from: Option<String>,
    /// The settings could not be worked out: the backup would fail.
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct HookCounts {
    before: usize,
    after: usize,
    on_error: usize,
}

#[derive(Debug, Serialize)]
struct ServerDecision {
    id: u32,
    name: String,
    usage_bytes: u64,
    limit_bytes: u64,
    /// `chosen`, `skipped` (no room), `unreachable`, or `fallback` (tried
    /// only if the servers before it fail).
    decision: &'static str,
    reason: String,
}

pub async fn run(config: &Config, args: &BackupArgs, json: bool) -> anyhow::Result<u8> {
    let sites = super::backup::select_sites(config, args)?;
    // Read-only: a catalog that does not exist yet is not created.
    let catalog = if config.state_dir.join("catalog.db").is_file() {
        Some(Arc::new(Catalog::open(&config.state_dir)?))
    } else {
        None
    };
    let mut plans = Vec::new();
    for site in &sites {
        plans.push(plan_site(config, catalog.as_ref(), site).await);
    }
    if json {
        print_json(&serde_json::json!({ "dry_run": true, "sites": plans }));
    } else {
        for p in &plans {
            print_plan(p);
        }
    }
    Ok(if plans.iter().any(|p| p.error.is_some()) {
        crate::EXIT_FAILED
    } else {
        0
    })
}

async fn plan_site(config: &Config, catalog: Option<&Arc<Catalog>>, site: &SiteConfig) -> SitePlan {
    let mut warnings = Vec::new();
    let mut error = None;
    let (root, rules) = (site.path.clone(), site.excludes.clone());
    let source = if site.path.is_dir() {
        let walked = tokio::task::spawn_blocking(move || {
            let (excludes, w) = Excludes::for_site(&root, &rules);
            (archive::survey(&root, &excludes), w)
        })
        .await;
        match walked {
            Ok((survey, w)) => {
                warnings.extend(w);
                Some(survey)
            }
            Err(e) => {
                error = Some(format!("the walk failed: {e}"));
                None
            }
        }
    } else {
        error = Some(format!(
            "site directory {} is missing or not a directory — is the volume mounted?",
            site.path.display()
        ));
        None
    };
    let database = plan_database(site);
    if let Some(e) = &database.error {
        error.get_or_insert_with(|| format!("cannot back up the database: {e}"));
    }
    let source_bytes = source.as_ref().map_or(0, |s| s.file_bytes);
    let last = match catalog {
        Some(cat) => cat.last_archive_size(&site.name).unwrap_or_else(|e| {
            warnings.push(format!("catalog: {e}"));
            None
        }),
        None => None,
    };
    let margin = config.upload.size_margin_percent;
    let estimate = estimate_bytes(last, source_bytes, margin);
    let estimate_basis = match last {
        Some(l) => format!("the site's last archive ({}) + {margin} %", mb(l)),
        None if database.would_dump => "the files' size: no earlier archive, and the dump's size is not known".into(),
        None => "the files' size: no earlier archive".into(),
    };
    let (servers, chosen) = if config.node().is_some() {
        warnings.push(
            "node mode: the master chooses the storage provider when the backup leases credentials; it is not asked in a dry run"
                .into(),
        );
        (Vec::new(), None)
    } else {
        plan_servers_for(config, catalog, estimate).await
    };
    if chosen.is_none() && config.node().is_none() {
        error.get_or_insert_with(|| {
            if servers.is_empty() {
                "No S3 servers configured".to_string()
            } else {
                "no server would take the archive".to_string()
            }
        });
    }
    SitePlan {
        site: site.name.clone(),
        path: site.path.clone(),
        source,
        database,
        hooks: HookCounts {
            before: site.hooks.before.len(),
            after: site.hooks.after.len(),
            on_error: site.hooks.on_error.len(),
        },
        estimate_bytes: estimate,
        estimate_basis,
        servers,
        chosen_server: chosen,
        error,
        warnings,
    }
}

fn plan_database(site: &SiteConfig) -> DatabasePlan {
    match crate::database::resolve(&site.path, site.database.as_ref()) {
        Ok(Some(s)) => DatabasePlan {
            would_dump: true,
            name: Some(s.name.clone()),
            address: Some(s.address.to_string()),
            from: Some(s.source.to_string()),
            error: None,
        },
        Ok(None) => DatabasePlan {
            would_dump: false,
            name: None,
            address: None,
            from: None,
            error: None,
        },
        Err(e) => DatabasePlan {
            would_dump: false,
            name: None,
            address: None,
            from: None,
            error: Some(e.to_string()),
        },
    }
}

/// The configured servers in the order of trial, each with what the backup
/// would do: skip it for room, or try it; the first tried server that
/// answers a read-only check is the one chosen.
async fn plan_servers_for(
    config: &Config,
    catalog: Option<&Arc<Catalog>>,
    estimate: u64,
) -> (Vec<ServerDecision>, Option<u32>) {
    let targets = match ConfigSource::new(config, catalog.cloned())
        .servers(Purpose::Upload {
            estimated_bytes: estimate,
        })
        .await
    {
        Ok(t) => t,
        Err(_) => return (Vec::new(), None),
    };
    let slots = ServerSlot::of(&targets);
    let prefix = config.owner().prefix();
    let mut chosen = None;
    let mut out = Vec::new();
    for choice in plan_servers(&slots, estimate) {
        let id = match &choice {
            Choice::Try(id) | Choice::Skip(id, _) => *id,
        };
        let Some(t) = targets.iter().find(|t| t.id == id) else {
            continue;
        };
        let (decision, reason) = match (&choice, chosen) {
            (Choice::Skip(_, skip), _) => ("skipped", skip.to_string()),
            (Choice::Try(_), Some(first)) => ("fallback", format!("tried only if server {first} fails")),
            (Choice::Try(_), None) => match t.store() {
                Err(e) => ("unreachable", e.to_string()),
                Ok(store) => match store.check(&prefix).await {
                    Ok(()) => {
                        chosen = Some(t.id);
                        (
                            "chosen",
                            format!(
                                "the first server in order that answers and has room: {} + estimate {} within the limit of {}",
                                mb(t.usage_bytes),
                                mb(estimate),
                                mb(t.limit_bytes)
                            ),
                        )
                    }
                    Err(e) => ("unreachable", format!("{e}; the backup would try the next server")),
                },
            },
        };
        out.push(ServerDecision {
            id: t.id,
            name: t.name.clone(),
            usage_bytes: t.usage_bytes,
            limit_bytes: t.limit_bytes,
            decision,
            reason,
        });
    }
    (out, chosen)
}

fn print_plan(p: &SitePlan) {
    println!("{}: dry run (nothing is uploaded, recorded, dumped or run)", p.site);
    match &p.source {
        Some(s) => {
            println!(
                "  would archive {}: {} files, {} directories, {} symlinks, {}",
                p.path.display(),
                s.files,
                s.dirs,
                s.symlinks,
                mb(s.file_bytes)
            );
            if s.special > 0 || s.unreadable > 0 {
                println!(
                    "  skipped: {} sockets/FIFOs/devices, {} unreadable entries",
                    s.special, s.unreadable
                );
            }
            if s.excluded.entries == 0 {
                println!("  excluded: nothing");
            } else {
                println!(
                    "  excluded: {} entries ({} files, {})",
                    s.excluded.entries,
                    s.excluded.files,
                    mb(s.excluded.file_bytes)
                );
                for r in s.excluded_by.iter().take(10) {
                    println!(
                        "    {:<30} {} entries, {} files, {}  (from {})",
                        r.pattern,
                        r.count.entries,
                        r.count.files,
                        mb(r.count.file_bytes),
                        r.source
                    );
                }
                if s.excluded_by.len() > 10 {
                    println!("    … and {} more rules (see --json)", s.excluded_by.len() - 10);
                }
            }
        }
        None => println!("  files: not walked"),
    }
    let d = &p.database;
    match (&d.error, d.would_dump) {
        (Some(e), _) => println!("  database: cannot be worked out: {e}"),
        (None, true) => println!(
            "  database: {} at {} would be dumped (settings from {})",
            d.name.as_deref().unwrap_or("?"),
            d.address.as_deref().unwrap_or("?"),
            d.from.as_deref().unwrap_or("?")
        ),
        (None, false) => println!("  database: none"),
    }
    let h = &p.hooks;
    if h.before + h.after + h.on_error > 0 {
        println!(
            "  hooks that would run: {} before, {} after, {} on_error",
            h.before, h.after, h.on_error
        );
    }
    println!("  estimate: {} ({})", mb(p.estimate_bytes), p.estimate_basis);
    for s in &p.servers {
        println!("  server {} {}: {}: {}", s.id, s.name, s.decision, s.reason);
    }
    for w in &p.warnings {
        println!("  warning: {w}");
    }
    match (&p.error, p.chosen_server) {
        (Some(e), _) => println!("  would FAIL: {e}"),
        (None, Some(id)) => println!("  would store on server {id}"),
        (None, None) => {}
    }
}
