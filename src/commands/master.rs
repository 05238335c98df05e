//! `master …`: glue over [`crate::master`]. Only `[master_server]` is
//! loaded. A new token is printed once, on stdout; everything else a
//! command says goes to stderr (or one JSON document with `--json`).

use crate::cli::{MasterCommand, NodeCommand, TokenCommand};
use crate::config::MasterServerConfig;
use crate::master::repo::Repo;
use crate::master::{MasterError, admin, gb_field, rotate, serve};
use crate::protocol::bytes_to_gb;
use anyhow::Context;
use serde_json::json;

pub async fn run(cfg: &MasterServerConfig, command: &MasterCommand, json: bool) -> anyhow::Result<u8> {
    match command {
        MasterCommand::Init => {
            let done = admin::init(cfg)?;
            if json {
                println!(
                    "{}",
                    json!({ "database": done.database, "key_file": done.key_file, "token": done.token.expose() })
                );
            } else {
                eprintln!("Database: {}", done.database.display());
                if done.key_created {
                    eprintln!(
                        "Key file: {} (0600; back it up: without it the provider keys are lost)",
                        done.key_file.display()
                    );
                } else {
                    eprintln!("Key file: {} (existing)", done.key_file.display());
                }
                println!("Super-admin token: {}", done.token.expose());
                eprintln!("The token is shown only now; keep it somewhere safe.");
            }
            Ok(0)
        }
        MasterCommand::Serve => {
            serve::serve(cfg).await.context("master serve")?;
            Ok(0)
        }
        MasterCommand::RotateKey => {
            let report = rotate::rotate(&cfg.state_dir, &cfg.key_file, |_| ()).context("rotate-key")?;
            if json {
                super::print_json(&report);
            } else {
                if report.resumed {
                    eprintln!("Finished an interrupted rotation.");
                }
                eprintln!(
                    "Provider keys re-encrypted under key {} ({} providers); retired: {}.",
                    report.new_key_id,
                    report.resealed,
                    report.retired_key_ids.join(", ")
                );
                match report.signalled {
                    Some(pid) => eprintln!("Told master serve (pid {pid}) to re-read the key file."),
                    None => eprintln!("No running master serve found; it re-reads the key file when it starts."),
                }
            }
            Ok(0)
        }
        MasterCommand::Token(t) => token(cfg, t, json),
        MasterCommand::Node(n) => node(cfg, n, json),
    }
}

fn token(cfg: &MasterServerConfig, command: &TokenCommand, json: bool) -> anyhow::Result<u8> {
    let repo = Repo::open(&cfg.state_dir)?;
    match command {
        TokenCommand::Create { label } => {
            let (id, token) = admin::create_admin_token(&repo, label)?;
            if json {
                println!("{}", json!({ "id": id, "token": token.expose() }));
            } else {
                eprintln!("Token {id} (super admin) created; it is shown only now.");
                println!("Super-admin token: {}", token.expose());
            }
        }
        TokenCommand::List => {
            let tokens = repo.list_tokens()?;
            if json {
                super::print_json(&tokens);
            } else {
                println!(
                    "{:>4}  {:<11}  {:<36}  {:<24}  {:<8}  LABEL",
                    "ID", "ROLE", "NODE", "CREATED", "STATE"
                );
                for t in tokens {
                    println!(
                        "{:>4}  {:<11}  {:<36}  {:<24}  {:<8}  {}",
                        t.id,
                        serde_json::to_value(t.role)?.as_str().unwrap_or_default(),
                        t.node_uuid.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
                        t.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        if t.revoked_at.is_some() { "revoked" } else { "active" },
                        t.label
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            if !repo.revoke_token(*id)? {
                return Err(MasterError::NotFound(format!("no active token {id}")).into());
            }
            if json {
                println!("{}", json!({ "revoked": id }));
            } else {
                eprintln!("Token {id} revoked.");
            }
        }
    }
    Ok(0)
}

fn node(cfg: &MasterServerConfig, command: &NodeCommand, json: bool) -> anyhow::Result<u8> {
    let repo = Repo::open(&cfg.state_dir)?;
    match command {
        NodeCommand::Add { name, quota_gb } => {
            let quota = quota_gb.map(|q| gb_field("quota_gb", q)).transpose()?;
            let (node, token) = admin::add_node(&repo, name, quota)?;
            if json {
                println!(
                    "{}",
                    json!({ "node_uuid": node.node_uuid, "name": node.name, "token": token.expose() })
                );
            } else {
                println!("node_uuid: {}", node.node_uuid);
                println!("token: {}", token.expose());
                eprintln!("The token is shown only now: put it in the node's [master] token_file.");
            }
        }
        NodeCommand::List => {
            let nodes = repo.list_nodes()?;
            let sites = repo.list_sites(None)?;
            if json {
                let list: Vec<_> = nodes
                    .iter()
                    .map(|n| {
                        json!({
                            "node_uuid": n.node_uuid, "name": n.name,
                            "quota_gb": n.quota_bytes.map(bytes_to_gb), "used_bytes": n.used_bytes,
                            "archive_count": n.archive_count, "last_seen": n.last_seen,
                            "sites": sites.iter().filter(|s| s.node_uuid == n.node_uuid).count(),
                        })
                    })
                    .collect();
                super::print_json(&list);
            } else {
                println!(
                    "{:<36}  {:<20}  {:>12}  {:>10}  {:>5}  LAST SEEN",
                    "NODE", "NAME", "USED GB", "QUOTA GB", "SITES"
                );
                for n in nodes {
                    println!(
                        "{:<36}  {:<20}  {:>12.3}  {:>10}  {:>5}  {}",
                        n.node_uuid,
                        n.name,
                        bytes_to_gb(n.used_bytes),
                        n.quota_bytes
                            .map(|q| format!("{:.3}", bytes_to_gb(q)))
                            .unwrap_or_else(|| "-".into()),
                        sites.iter().filter(|s| s.node_uuid == n.node_uuid).count(),
                        n.last_seen
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
        }
        NodeCommand::Remove { node, force } => {
            let (row, forgotten) = admin::remove_node(&repo, node, *force)?;
            if json {
                println!(
                    "{}",
                    json!({ "removed": row.node_uuid, "archives_forgotten": forgotten })
                );
            } else {
                eprintln!(
                    "Node {} ({}) removed; {forgotten} archive records forgotten.",
                    row.name, row.node_uuid
                );
            }
        }
    }
    Ok(0)
}
