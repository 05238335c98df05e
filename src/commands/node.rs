//! `node status`: this host as a node of a master (see [`crate::node`]).

use crate::catalog::Catalog;
use crate::config::Config;
use crate::node::{self, LAST_SYNC_ERROR, LAST_SYNC_OK, MasterClient};
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Serialize)]
struct SiteLine {
    name: String,
    site_uuid: Option<String>,
    quota_bytes: Option<u64>,
    used_bytes: Option<u64>,
    archive_count: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Status {
    master: String,
    node_uuid: String,
    reachable: bool,
    error: Option<String>,
    node_quota_bytes: Option<u64>,
    node_used_bytes: Option<u64>,
    sites: Vec<SiteLine>,
    outbox: usize,
    last_sync: Option<String>,
    last_sync_error: Option<String>,
}

pub async fn status(config: &Config, json: bool) -> anyhow::Result<u8> {
    let Some(node_cfg) = config.node() else {
        anyhow::bail!("this host is not a node: set mode = \"node\" and a [master] table (see README, Node mode)");
    };
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let client = MasterClient::new(node_cfg)?;
    // A sync: it proves the master reachable, delivers the outbox and
    // brings back quotas and usage.
    let synced = node::sync(config, &catalog, &client).await;
    let cat = catalog.clone();
    let (uuids, outbox, last_ok, last_err) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::catalog::CatalogError>((
            cat.site_uuids()?,
            cat.outbox()?.len(),
            cat.node_state(LAST_SYNC_OK)?,
            cat.node_state(LAST_SYNC_ERROR)?,
        ))
    })
    .await??;
    let (reachable, error, response) = match synced {
        Ok(r) => (true, None, Some(r)),
        Err(e) => (false, Some(e.to_string()), None),
    };
    let sites = config
        .sites
        .iter()
        .map(|s| {
            let uuid = uuids.iter().find(|(n, _)| n == &s.name).map(|(_, u)| u.clone());
            let remote = response
                .as_ref()
                .and_then(|r| r.sites.iter().find(|x| Some(x.site_uuid.to_string()) == uuid));
            SiteLine {
                name: s.name.clone(),
                site_uuid: uuid.clone(),
                quota_bytes: remote.and_then(|r| r.quota_bytes),
                used_bytes: remote.map(|r| r.used_bytes),
                archive_count: remote.map(|r| r.archive_count),
            }
        })
        .collect();
    let status = Status {
        master: node_cfg.url.to_string(),
        node_uuid: node_cfg.node_uuid.clone(),
        reachable,
        error,
        node_quota_bytes: response.as_ref().and_then(|r| r.node_quota_bytes),
        node_used_bytes: response.as_ref().map(|r| r.node_used_bytes),
        sites,
        outbox,
        last_sync: last_ok,
        last_sync_error: last_err,
    };
    if json {
        super::print_json(&status);
    } else {
        print_status(&status);
    }
    Ok(if status.reachable { 0 } else { crate::EXIT_FAILED })
}

fn print_status(s: &Status) {
    let gb = |b: Option<u64>| b.map_or_else(|| "-".to_string(), |b| format!("{:.2} GB", b as f64 / 1e9));
    println!(
        "Master:    {} ({})",
        s.master,
        if s.reachable { "reachable" } else { "UNREACHABLE" }
    );
    if let Some(e) = &s.error {
        println!("           {e}");
    }
    println!("Node:      {}", s.node_uuid);
    println!(
        "Usage:     {} of quota {}",
        gb(s.node_used_bytes),
        gb(s.node_quota_bytes)
    );
    println!("Outbox:    {} report(s) waiting", s.outbox);
    println!("Last sync: {}", s.last_sync.as_deref().unwrap_or("never"));
    for site in &s.sites {
        println!(
            "  - {} {}: {} of quota {}, {} archive(s)",
            site.name,
            site.site_uuid.as_deref().unwrap_or("(not registered)"),
            gb(site.used_bytes),
            gb(site.quota_bytes),
            site.archive_count.map_or_else(|| "?".into(), |n| n.to_string())
        );
    }
}
