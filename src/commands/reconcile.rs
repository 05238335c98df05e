//! `reconcile [--dry-run]`: per server, gather (read-only), plan (pure),
//! print, then apply unless `--dry-run`. See [`crate::reconcile`].

use super::mb;
use crate::catalog::{ArchiveRow, Catalog, UploadingRow};
use crate::cli::ReconcileArgs;
use crate::config::Config;
use crate::install::{self, Installation, Ownership};
use crate::layout::{ArchiveKey, Owner};
use crate::lock::SiteLock;
use crate::reconcile::{self, ApplyReport, PlanInput, ServerPlan};
use crate::storage::{self, ObjectStore, Purpose, Target, with_retries};
use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, Serialize)]
struct ServerResult {
    server_id: u32,
    server: String,
    /// The prefix listed (`{host_id}/`).
    prefix: String,
    /// Who the prefix's owner marker names, if there is one.
    owner: Option<String>,
    /// Why the server could not be reconciled.
    error: Option<String>,
    plan: Option<ServerPlan>,
    /// What applying the plan did (absent on a dry run).
    applied: Option<ApplyReport>,
}

pub async fn run(config: &Config, args: &ReconcileArgs, json: bool) -> anyhow::Result<u8> {
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let install = crate::install::load_or_create(&config.state_dir)?;
    let targets = crate::node::read_source(config, &catalog)
        .servers(Purpose::Read)
        .await?;
    let current = config.owner();
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
        let cat = catalog.clone();
        let location = server.location.clone();
        let rows = tokio::task::spawn_blocking(move || cat.archives_on(&location)).await??;
        // The current prefix, and every prefix this catalog has rows under
        // on this server (a changed host_id): rows are only compared with
        // a listing of their own prefix.
        let mut owners: BTreeSet<Owner> = rows
            .iter()
            .filter_map(|r| ArchiveKey::parse(&r.key).map(|k| k.owner()))
            .collect();
        owners.insert(current.clone());
        for owner in owners {
            let adopt = args.adopt && owner == current;
            let result = reconcile_prefix(
                Prefix {
                    server,
                    owner: &owner,
                    adopt,
                    dry_run: args.dry_run,
                },
                &catalog,
                &install,
                &rows,
                &uploading,
                &busy_sites,
            )
            .await;
            results.push(result);
        }
    }

    let failed = results
        .iter()
        .any(|r| r.error.is_some() || r.applied.as_ref().is_some_and(|a| !a.errors.is_empty()));
    if json {
        super::print_json(&serde_json::json!({ "dry_run": args.dry_run, "servers": results }));
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

/// One server and one prefix on it.
struct Prefix<'a> {
    server: &'a Target,
    owner: &'a Owner,
    /// `--adopt`, for the current prefix.
    adopt: bool,
    dry_run: bool,
}

/// Gather, plan and (unless a dry run) apply for one prefix on one server.
async fn reconcile_prefix(
    at: Prefix<'_>,
    catalog: &Arc<Catalog>,
    install: &Installation,
    rows: &[ArchiveRow],
    uploading: &[UploadingRow],
    busy_sites: &BTreeSet<String>,
) -> ServerResult {
    let Prefix {
        server,
        owner,
        adopt,
        dry_run,
    } = at;
    let prefix = owner.prefix();
    let mut result = ServerResult {
        server_id: server.id,
        server: server.name.clone(),
        prefix: prefix.clone(),
        owner: None,
        error: None,
        plan: None,
        applied: None,
    };
    let store = match server.store() {
        Ok(s) => s,
        Err(e) => return result.failed(e.to_string()),
    };
    let cat = catalog.clone();
    let adopted = match tokio::task::spawn_blocking(move || cat.adopted_installs()).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return result.failed(e.to_string()),
        Err(e) => return result.failed(e.to_string()),
    };
    let marker = match storage::read_marker(store.as_ref(), owner).await {
        Ok(m) => m,
        Err(e) => return result.failed(e.to_string()),
    };
    let mut ownership = Ownership::of(marker.as_ref(), install, &adopted);
    result.owner = marker
        .as_ref()
        .map(|m| format!("{} (install id {})", m.host, m.install_id));
    if let Ownership::Foreign(m) = &ownership
        && !adopt
    {
        return result.failed(install::foreign_owner_message(&prefix, &server.name, m, install));
    }
    if adopt && !dry_run && ownership != Ownership::Ours {
        if let Err(e) = take_over(store.as_ref(), owner, &ownership, catalog, install).await {
            return result.failed(e);
        }
        tracing::warn!(server = server.id, prefix = %prefix, "Adopted the prefix for this installation.");
        ownership = Ownership::Ours;
    }
    let mut adopted = adopted;
    if let Ownership::Foreign(m) = &ownership {
        adopted.push(m.install_id.clone()); // a dry run of --adopt
    }
    let rows: Vec<ArchiveRow> = rows.iter().filter(|r| r.key.starts_with(&prefix)).cloned().collect();
    let uploading: Vec<UploadingRow> = uploading
        .iter()
        .filter(|u| u.location() == server.location && u.key.starts_with(&prefix))
        .cloned()
        .collect();
    let inventory = match reconcile::gather(store.as_ref(), &prefix, &rows).await {
        Ok(inv) => inv,
        Err(e) => {
            tracing::error!(server = server.id, "Cannot reconcile: {e}");
            return result.failed(e.to_string());
        }
    };
    let may_import = |writer: Option<&str>| adopt || install::may_touch(writer, &ownership, install, &adopted);
    let plan = reconcile::plan_server(PlanInput {
        owner,
        inventory: &inventory,
        rows: &rows,
        uploading: &uploading,
        busy_sites,
        may_import: &may_import,
        prefix_owned: adopt || ownership == Ownership::Ours,
    });
    if !dry_run && !plan.is_empty() {
        let applied = reconcile::apply(&plan, server, store.as_ref(), catalog).await;
        for e in &applied.errors {
            tracing::error!(server = server.id, "{e}");
        }
        tracing::info!(server = server.id, changes = applied.changes, "Reconciled.");
        result.applied = Some(applied);
    }
    result.plan = Some(plan);
    result
}

/// `--adopt`: record the previous owner as adopted, then write this
/// installation's marker.
async fn take_over(
    store: &dyn ObjectStore,
    owner: &Owner,
    ownership: &Ownership,
    catalog: &Arc<Catalog>,
    install: &Installation,
) -> Result<(), String> {
    if let Ownership::Foreign(m) = ownership {
        let (cat, id, host) = (catalog.clone(), m.install_id.clone(), m.host.clone());
        tokio::task::spawn_blocking(move || cat.adopt_install(&id, &host))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    let (key, body) = (owner.marker_key(), Bytes::from(install.marker().to_bytes()));
    with_retries(2, || store.put_small(&key, body.clone()))
        .await
        .map_err(|e| e.to_string())
}

impl ServerResult {
    fn failed(mut self, error: String) -> Self {
        self.error = Some(error);
        self
    }
}

fn print_result(r: &ServerResult) {
    println!("{} {}", r.server, r.prefix);
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
    if p.open_uploads == reconcile::OpenUploads::NotListable {
        println!(
            "  uploads  open uploads: not listable on this server (it lacks ListMultipartUploads); those this catalog recorded are aborted by id"
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
