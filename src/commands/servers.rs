//! `servers`: check every configured server live and show its usage.

use super::mb;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::storage::{Capabilities, Purpose, StorageResult, Target};
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Serialize)]
struct ServerReport {
    id: u32,
    name: String,
    endpoint: String,
    bucket: String,
    #[serde(skip)]
    local: bool,
    usage_bytes: u64,
    limit_bytes: u64,
    ok: bool,
    status: &'static str,
    error: Option<String>,
    /// Optional calls the server implements (see `storage::Capabilities`);
    /// asked only of a server that answered.
    capabilities: Option<Capabilities>,
}

pub async fn run(config: &Config, json: bool) -> anyhow::Result<u8> {
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let prefix = config.owner().prefix();
    let targets = crate::node::read_source(config, &catalog)
        .servers(Purpose::Read)
        .await?;
    let checks = targets.iter().map(|server| {
        let prefix = prefix.clone();
        async move {
            check_target(server, &prefix).await?;
            let store = server.store()?;
            Ok::<_, crate::storage::StorageError>(crate::storage::probe_capabilities(store.as_ref(), &prefix).await)
        }
    });
    let results = futures::future::join_all(checks).await;
    let mut reports = Vec::new();
    for (server, result) in targets.iter().zip(results) {
        let (ok, status, error, capabilities) = match result {
            Ok(caps) => (true, "ok", None, Some(caps)),
            Err(e) => (false, e.kind(), Some(e.to_string()), None),
        };
        reports.push(ServerReport {
            id: server.id,
            name: server.name.clone(),
            endpoint: server.location.endpoint.clone(),
            bucket: server.location.bucket.clone(),
            local: server.is_local,
            usage_bytes: server.usage_bytes,
            limit_bytes: server.limit_bytes,
            ok,
            status,
            error,
            capabilities,
        });
    }
    let failed = reports.iter().filter(|r| !r.ok).count();
    if json {
        super::print_json(&serde_json::json!({ "servers": reports }));
    } else {
        println!("Configured S3 servers: {}", reports.len());
        for r in &reports {
            println!("  - {}", r.name);
            let pct = if r.limit_bytes > 0 {
                r.usage_bytes as f64 * 100.0 / r.limit_bytes as f64
            } else {
                0.0
            };
            println!(
                "    Usage: {} (limit {:.2} GB, {pct:.1}% used)",
                mb(r.usage_bytes),
                r.limit_bytes as f64 / 1e9
            );
            match &r.error {
                None if r.local => println!("    Status: OK (directory writable)"),
                None => println!("    Status: OK (reachable, credentials valid, bucket exists)"),
                Some(_) if r.status == "directory_missing" => {
                    println!("    Status: FAILED (directory missing — is it mounted?)")
                }
                Some(e) => println!("    Status: FAILED ({}): {e}", r.status),
            }
            if let (Some(c), false) = (&r.capabilities, r.local) {
                println!(
                    "    Optional calls: list open uploads: {}{}; part checksums: {}",
                    c.list_uploads.word(),
                    if c.list_uploads == crate::storage::Support::Unsupported {
                        " (reconcile aborts recorded uploads by id only)"
                    } else {
                        ""
                    },
                    match c.part_checksums {
                        crate::storage::Support::Unknown => "not known before an upload",
                        other => other.word(),
                    }
                );
            }
        }
    }
    Ok(if failed > 0 { crate::EXIT_FAILED } else { 0 })
}

/// The live check of one server: reachable, credentials valid, bucket
/// there (a `local` directory: present and writable). `configure` runs
/// the same check before it saves a server.
pub(crate) async fn check_target(server: &Target, prefix: &str) -> StorageResult<()> {
    server.store()?.check(prefix).await
}
