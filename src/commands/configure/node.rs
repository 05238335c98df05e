//! Node mode in a [`Draft`]: `mode = "node"` and the `[master]` table, the
//! token in its own `0600` file, and the connection test against the
//! master (a sync through the node's own client, [`MasterClient`]).

use super::doc;
use super::files::Draft;
use crate::commands::UsageError;
use crate::config::{NodeConfig, Secret};
use crate::node::{MasterClient, MasterError};
use crate::protocol::SyncRequest;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use toml_edit::{Item, Table};

/// What makes this host a node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub url: String,
    pub node_uuid: String,
    pub token: Secret,
    /// Where the token is kept.
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
}

/// The mode and `[master]` as the TOML file has them.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub mode: String,
    pub url: Option<String>,
    pub node_uuid: Option<String>,
    pub token_file: Option<String>,
    pub ca_file: Option<String>,
}

pub fn show(draft: &Draft) -> NodeView {
    let master = draft.doc.get("master").and_then(Item::as_table);
    let get = |k: &str| master.and_then(|t| doc::str_of(t, k));
    NodeView {
        mode: draft
            .doc
            .get("mode")
            .and_then(Item::as_str)
            .unwrap_or("standalone")
            .to_string(),
        url: get("url"),
        node_uuid: get("node_uuid"),
        token_file: get("token_file"),
        ca_file: get("ca_file"),
    }
}

/// Check the shape of what the operator typed (before any request).
pub fn check_spec(spec: &NodeSpec) -> Result<url::Url, String> {
    let url = url::Url::parse(spec.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| format!("{:?} is not a URL such as https://master.example:8700", spec.url))?;
    if !crate::layout::is_uuid(spec.node_uuid.trim()) {
        return Err(format!(
            "{:?} is not a node uuid (as `sitebackup master node add` prints it)",
            spec.node_uuid
        ));
    }
    if spec.token.expose().trim().is_empty() {
        return Err("the token is empty".into());
    }
    Ok(url)
}

/// The variables that would override what `configure node` writes into
/// the TOML: the env file's or the process environment's value wins, so
/// an edit of the TOML would be saved but not take effect.
const NODE_VARS: [&str; 5] = [
    "SITEBACKUP_MODE",
    "SITEBACKUP_MASTER_URL",
    "SITEBACKUP_MASTER_NODE_UUID",
    "SITEBACKUP_MASTER_TOKEN_FILE",
    "SITEBACKUP_MASTER_CA_FILE",
];

/// Refuse to edit node settings that an environment variable overrides.
pub fn refuse_overridden() -> Result<(), UsageError> {
    let set: Vec<&str> = NODE_VARS
        .into_iter()
        .filter(|name| crate::config::env_var(name).is_some())
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(UsageError(format!(
        "{} set in the env file or the environment, and it wins over the TOML file that configure edits: \
         change or remove it there first",
        set.join(", ")
    )))
}

/// Make the draft a node of the master in `spec`.
pub fn set(draft: &mut Draft, spec: &NodeSpec) -> anyhow::Result<()> {
    refuse_overridden()?;
    check_spec(spec).map_err(UsageError)?;
    doc::set(draft.doc.as_table_mut(), "mode", "node");
    if !draft.doc.get("master").is_some_and(Item::is_table) {
        if draft.doc.contains_key("master") {
            return Err(UsageError("`master` in the TOML file is not a [master] table; edit it by hand".into()).into());
        }
        draft.doc.insert("master", Item::Table(Table::new()));
    }
    let master = draft
        .doc
        .get_mut("master")
        .and_then(Item::as_table_mut)
        .ok_or_else(|| anyhow::anyhow!("internal error: [master] vanished"))?;
    doc::set(master, "url", spec.url.trim());
    doc::set(master, "node_uuid", spec.node_uuid.trim());
    doc::set(master, "token_file", spec.token_file.display().to_string());
    if let Some(ca) = &spec.ca_file {
        doc::set(master, "ca_file", ca.display().to_string());
    }
    draft.set_token(spec.token_file.clone(), spec.token.clone());
    Ok(())
}

/// Back to standalone mode; `[master]` stays for a later switch back.
pub fn disable(draft: &mut Draft) -> Result<(), UsageError> {
    refuse_overridden()?;
    doc::set(draft.doc.as_table_mut(), "mode", "standalone");
    Ok(())
}

/// Sync once with the master as this node: proves the URL, the TLS trust,
/// the token, and that the token is this node's.
pub async fn test_master(spec: &NodeSpec) -> Result<(), String> {
    let url = check_spec(spec)?;
    let node = NodeConfig {
        url,
        node_uuid: spec.node_uuid.trim().to_string(),
        token: Secret::new(spec.token.expose().trim().to_string()),
        token_file: spec.token_file.clone(),
        ca_file: spec.ca_file.clone(),
        sync_interval_secs: 300,
        retry_secs: 0,
    };
    let client = MasterClient::new(&node).map_err(|e| e.to_string())?;
    let request = SyncRequest {
        version: env!("CARGO_PKG_VERSION").to_string(),
        sites: Vec::new(),
        free_space_bytes: None,
    };
    let answer = tokio::time::timeout(Duration::from_secs(60), client.sync(&request))
        .await
        .map_err(|_| format!("the master at {} did not answer within 60 s", node.url))?;
    match answer {
        Ok(r) if r.node_uuid.to_string() == node.node_uuid => Ok(()),
        Ok(r) => Err(format!(
            "the token belongs to node {}, not {}: check the node uuid",
            r.node_uuid, node.node_uuid
        )),
        Err(e @ MasterError::Unauthorized) => Err(format!(
            "{e}. The token is printed once by `sitebackup master node add` on the master; paste it exactly"
        )),
        Err(e @ MasterError::Unreachable { .. }) => Err(format!(
            "{e}. Check the URL (scheme and port), that the master runs (`systemctl status sitebackup-master`), the firewall, and --ca-file for a private CA"
        )),
        Err(e) => Err(e.to_string()),
    }
}
