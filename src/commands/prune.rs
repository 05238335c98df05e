//! `prune [--site S] [--dry-run]`: apply each site's retention policy.
//! Corrupt archives are removed whatever the policy, and reported as such;
//! suspect ones are shown with their marking.

use crate::catalog::{Catalog, Condition};
use crate::cli::PruneArgs;
use crate::config::Config;
use crate::retention::prune_site;
use std::sync::Arc;

pub async fn run(config: &Config, args: &PruneArgs, json: bool) -> anyhow::Result<u8> {
    let sites: Vec<_> = match &args.site {
        Some(name) => vec![
            config
                .site(name)
                .cloned()
                .ok_or_else(|| super::UsageError::unknown_site(name, config))?,
        ],
        None => config.sites.clone(),
    };
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let source = crate::node::read_source(config, &catalog);
    let install = crate::install::load_or_create(&config.state_dir)?;
    let now = chrono::Utc::now();
    let mut failed = false;
    let mut docs = Vec::new();
    for site in &sites {
        let (plan, results) = prune_site(source.as_ref(), &install, &catalog, site, now, args.dry_run)
            .await
            .map_err(anyhow::Error::msg)?;
        failed |= results.iter().any(|r| !r.deleted);
        crate::node::report_pruned(config, &catalog, &results).await;
        if json {
            docs.push(serde_json::json!({
                "site": site.name,
                "dry_run": args.dry_run,
                "keep": plan.keep,
                "remove": plan.remove,
                "corrupt": plan.corrupt().map(|a| a.id).collect::<Vec<_>>(),
                "results": results,
            }));
            continue;
        }
        let corrupt = plan.corrupt().count();
        println!(
            "{}: keep {}, remove {}{}{}",
            site.name,
            plan.keep.len(),
            plan.remove.len(),
            if corrupt > 0 {
                format!(" ({corrupt} corrupt)")
            } else {
                String::new()
            },
            if args.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        );
        for k in &plan.keep {
            println!(
                "  keep    #{:<5} {}{}  {}  ({})",
                k.id,
                k.created_at,
                mark(k.condition),
                k.key,
                k.reasons.join("; ")
            );
        }
        for r in &plan.remove {
            let outcome = results.iter().find(|x| x.id == r.id);
            let status = match outcome {
                None => "".to_string(),
                Some(x) if x.deleted => " → deleted".to_string(),
                Some(x) => format!(" → FAILED: {}", x.error.as_deref().unwrap_or("?")),
            };
            println!(
                "  remove  #{:<5} {}{}  {}  ({}){status}",
                r.id,
                r.created_at,
                mark(r.condition),
                r.key,
                r.reasons.join("; ")
            );
        }
    }
    if json {
        super::print_json(&serde_json::json!({ "sites": docs }));
    }
    Ok(if failed { crate::EXIT_FAILED } else { 0 })
}

/// ` SUSPECT` / ` CORRUPT` after the date, nothing for a clean archive.
fn mark(c: Condition) -> String {
    match c {
        Condition::Clean => String::new(),
        other => format!(" {}", other.as_str().to_uppercase()),
    }
}
