//! `reconcile [--dry-run]`: per server, gather (read-only), plan (pure),
//! print, then apply unless `--dry-run`. See [`crate::reconcile`].

use super::mb;
use crate::catalog::Catalog;
use crate::cli::ReconcileArgs;
use crate::config::Config;
use crate::lock::SiteLock;
use crate::reconcile::{self, ApplyReport, PlanInput, ServerPlan};
use crate::storage::{ConfigSource, Purpose, ServerSource};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, Serialize)]
struct ServerResult {
    server_id: u32,
    server: String,
    /// Why the server could not be reconciled.
    error: Option<String>,
    plan: Option<ServerPlan>,
    /// What applying the plan did (absent on a dry run).
    applied: Option<ApplyReport>,
}

pub async fn run(config: &Config, args: &ReconcileArgs, json: bool) -> anyhow::Result<u8> {
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let targets = ConfigSource::new(config, Some(catalog.clone()))
        .servers(Purpose::Read)
        .await?;
    let owner = config.owner();
    let prefix = owner.prefix();
    let cat = catalog.clone();
    let uploading = tokio::task::spawn_blocking(move || cat.uploading_rows()).await??;
    let mut busy_sites = BTreeSet::new();
    for site in uploading.iter().map(|u| u.site.as_str()).collect::<BTreeSet<_>>() {
        if SiteLock::is_held(&config.state_dir, site)? {
            busy_sites.insert(site.to_string());
        }
    }

    let mut results = Vec::new();
    for server in &targets {
        let mut result = ServerResult {
            server_id: server.id,
            server: server.name.clone(),
            error: None,
            plan: None,
            applied: None,
        };
        let cat = catalog.clone();
        let location = server.location.clone();
        let rows = tokio::task::spawn_blocking(move || cat.archives_on(&location)).await??;
        let server_uploading: Vec<_> = uploading
            .iter()
            .filter(|u| u.location() == server.location)
            .cloned()
            .collect();
        let gathered = match server.store() {
            Ok(store) => reconcile::gather(store.as_ref(), &prefix, &rows)
                .await
                .map(|inv| (store, inv)),
            Err(e) => Err(e),
        };
        let (store, inventory) = match gathered {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(server = server.id, "Cannot reconcile: {e}");
                result.error = Some(e.to_string());
                results.push(result);
                continue;
            }
        };
        let plan = reconcile::plan_server(PlanInput {
            owner: &owner,
            inventory: &inventory,
            rows: &rows,
            uploading: &server_uploading,
            busy_sites: &busy_sites,
        });
        if !args.dry_run && !plan.is_empty() {
            let applied = reconcile::apply(&plan, server, store.as_ref(), &catalog).await;
            for e in &applied.errors {
                tracing::error!(server = server.id, "{e}");
            }
            tracing::info!(server = server.id, changes = applied.changes, "Reconciled.");
            result.applied = Some(applied);
        }
        result.plan = Some(plan);
        results.push(result);
    }

    let failed = results
        .iter()
        .any(|r| r.error.is_some() || r.applied.as_ref().is_some_and(|a| !a.errors.is_empty()));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "dry_run": args.dry_run, "servers": results }))?
        );
    } else {
        for r in &results {
            print_result(r);
        }
        if args.dry_run {
            println!("\nDry run: nothing was changed. Run `sitebackup reconcile` to apply.");
        }
    }
    Ok(if failed { crate::EXIT_FAILED } else { 0 })
}

fn print_result(r: &ServerResult) {
    println!("{}", r.server);
    if let Some(e) = &r.error {
        println!("  FAILED: {e} (nothing changed on this server)");
        return;
    }
    let Some(p) = &r.plan else { return };
    for i in &p.imports {
        let sha = i
            .sha256
            .as_deref()
            .map_or("unknown (no checksum file)".to_string(), |s| s.to_string());
        let reuse = match (i.existing_id, &i.previous_status) {
            (Some(id), Some(status)) => format!(", row #{id} was {status}"),
            _ => String::new(),
        };
        println!(
            "  import   {} (site {}, {}, sha256 {sha}{reuse})",
            i.key,
            i.site,
            mb(i.size_bytes)
        );
    }
    for m in &p.missing {
        println!(
            "  missing  #{} {} ({}): not on the server",
            m.id,
            m.key,
            mb(m.size_bytes)
        );
    }
    for s in &p.size_mismatches {
        println!(
            "  size     #{} {}: catalog {} bytes, server {} bytes",
            s.id, s.key, s.catalog_bytes, s.server_bytes
        );
    }
    for s in &p.stale_rows {
        println!("  stale    #{} {}: interrupted upload, marked failed", s.id, s.key);
    }
    for u in &p.aborts {
        println!("  abort    {} (open multipart upload {})", u.key, u.upload_id);
    }
    for u in &p.in_progress {
        println!(
            "  running  {} (upload {} of a backup in progress; left alone)",
            u.key, u.upload_id
        );
    }
    for k in &p.orphan_sidecars {
        println!("  delete   {k} (checksum file without its archive)");
    }
    for k in &p.unrecognised {
        println!("  ignore   {k} (not a sitebackup archive)");
    }
    if p.is_empty() {
        println!("  catalog and server agree");
    }
    match &r.applied {
        Some(a) => {
            println!(
                "  usage    {} -> {} ({} changes applied)",
                mb(p.usage_before_bytes),
                mb(a.usage_bytes),
                a.changes
            );
            for e in &a.errors {
                println!("  ERROR    {e}");
            }
        }
        None => println!("  usage    {} -> {}", mb(p.usage_before_bytes), mb(p.usage_after_bytes)),
    }
}
