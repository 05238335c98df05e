//! Storage servers in a [`Draft`]: list, add, change, remove, renumber.
//! One implementation for the wizard and the subcommands.
//!
//! Where each value goes: keys (access and secret) to the env file as
//! `S3_SERVER_N_*`; every other field to `[[servers]]` in the TOML file,
//! unless the env file already sets it (a setup carried over from the
//! original tool), where it is changed in place, since the env file wins.

use super::doc;
use super::files::Draft;
use crate::commands::UsageError;
use crate::config::Secret;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use toml_edit::Table;

/// One server as the files describe it (no secret).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ServerView {
    pub id: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub path: Option<String>,
    pub storage_limit_gb: Option<f64>,
    pub path_style: Option<bool>,
    /// Where it is set: `toml`, `env_file`, `environment` (the process).
    pub sources: Vec<&'static str>,
}

impl ServerView {
    /// `S3Server(N: endpoint/bucket)`, as `servers` prints it.
    pub fn label(&self) -> String {
        match self.kind.as_str() {
            "local" => format!("LocalServer({}: {})", self.id, self.path.as_deref().unwrap_or("?")),
            _ => format!(
                "S3Server({}: {}/{})",
                self.id,
                self.endpoint
                    .as_deref()
                    .map_or("?", |e| e.trim_start_matches("https://").trim_start_matches("http://")),
                self.bucket.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// Values to set on a server; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ServerSpec {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub storage_limit_gb: Option<f64>,
    pub path_style: Option<bool>,
    pub access_key: Option<Secret>,
    pub secret_key: Option<Secret>,
}

pub fn env_key(id: u32, field: &str) -> String {
    format!("S3_SERVER_{id}_{field}")
}

/// The server number of an `S3_SERVER_N_*` name.
fn env_id(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("S3_SERVER_")?;
    rest.split_once('_')?.0.parse().ok()
}

/// The servers of the draft, by number.
pub fn list(draft: &Draft) -> Vec<ServerView> {
    let mut by_id: BTreeMap<u32, ServerView> = BTreeMap::new();
    for t in doc::tables(&draft.doc, "servers") {
        let Some(id) = doc::int_of(t, "id").and_then(|i| u32::try_from(i).ok()) else {
            continue;
        };
        let v = by_id.entry(id).or_default();
        v.id = id;
        v.kind = doc::str_of(t, "type").unwrap_or_default();
        v.endpoint = doc::str_of(t, "endpoint");
        v.region = doc::str_of(t, "region");
        v.bucket = doc::str_of(t, "bucket");
        v.path = doc::str_of(t, "path");
        v.storage_limit_gb = doc::float_of(t, "storage_limit_gb");
        v.path_style = t.get("path_style").and_then(|i| i.as_bool());
        v.sources.push("toml");
    }
    let file_vars = draft.env.vars().unwrap_or_default();
    let process: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("S3_SERVER_")).collect();
    for (vars, source) in [(&file_vars, "env_file"), (&process, "environment")] {
        for (name, value) in vars {
            let Some(id) = env_id(name) else { continue };
            let v = by_id.entry(id).or_default();
            v.id = id;
            if !v.sources.contains(&source) {
                v.sources.push(source);
            }
            let field = &name[format!("S3_SERVER_{id}_").len()..];
            match field {
                "ENDPOINT" => v.endpoint = Some(value.clone()),
                "REGION" => v.region = Some(value.clone()),
                "BUCKET" => v.bucket = Some(value.clone()),
                "PATH" => v.path = Some(value.clone()),
                "TYPE" => v.kind = value.clone(),
                "STORAGE_LIMIT_GB" => v.storage_limit_gb = value.trim().parse().ok(),
                "PATH_STYLE" => v.path_style = parse_bool(value),
                _ => {}
            }
        }
    }
    for v in by_id.values_mut() {
        if v.kind.is_empty() {
            v.kind = "s3".into();
        }
        v.kind = v.kind.to_ascii_lowercase();
    }
    by_id.into_values().collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn ids(draft: &Draft) -> BTreeSet<u32> {
    list(draft).iter().map(|s| s.id).collect()
}

/// Add a server as number `id` (default: one more than the highest) with
/// every field of `spec`. Returns its number.
pub fn add(draft: &mut Draft, id: Option<u32>, spec: &ServerSpec) -> anyhow::Result<u32> {
    let used = ids(draft);
    let id = match id {
        Some(0) => return Err(UsageError("server numbers start at 1".into()).into()),
        Some(id) if used.contains(&id) => {
            return Err(UsageError(format!(
                "server {id} exists already; use `configure s3 edit {id}`, or another --id"
            ))
            .into());
        }
        Some(id) => id,
        None => used.last().map_or(1, |m| m + 1),
    };
    for (value, what) in [
        (&spec.endpoint, "an endpoint"),
        (&spec.region, "a region"),
        (&spec.bucket, "a bucket"),
    ] {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Err(UsageError(format!("a new server needs {what}")).into());
        }
    }
    if spec.access_key.is_none() || spec.secret_key.is_none() {
        return Err(UsageError("a new server needs an access key and a secret key".into()).into());
    }
    let spec = ServerSpec {
        storage_limit_gb: spec.storage_limit_gb.or(Some(crate::config::DEFAULT_STORAGE_LIMIT_GB)),
        ..spec.clone()
    };
    apply(draft, id, &spec)?;
    Ok(id)
}

/// Change server `id`'s fields given in `spec`.
pub fn edit(draft: &mut Draft, id: u32, spec: &ServerSpec) -> anyhow::Result<()> {
    if !ids(draft).contains(&id) {
        return Err(unknown(draft, id).into());
    }
    apply(draft, id, spec)
}

fn apply(draft: &mut Draft, id: u32, spec: &ServerSpec) -> anyhow::Result<()> {
    let trimmed = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string());
    let fields: [(&str, &str, Option<toml_edit::Value>, Option<String>); 5] = [
        (
            "endpoint",
            "ENDPOINT",
            trimmed(&spec.endpoint).map(Into::into),
            trimmed(&spec.endpoint),
        ),
        (
            "region",
            "REGION",
            trimmed(&spec.region).map(Into::into),
            trimmed(&spec.region),
        ),
        (
            "bucket",
            "BUCKET",
            trimmed(&spec.bucket).map(Into::into),
            trimmed(&spec.bucket),
        ),
        (
            "storage_limit_gb",
            "STORAGE_LIMIT_GB",
            spec.storage_limit_gb.map(doc::gb_value),
            spec.storage_limit_gb.map(|g| g.to_string()),
        ),
        (
            "path_style",
            "PATH_STYLE",
            spec.path_style.map(Into::into),
            spec.path_style.map(|b| b.to_string()),
        ),
    ];
    for (key, field, toml_value, env_value) in fields {
        let (Some(toml_value), Some(env_value)) = (toml_value, env_value) else {
            continue;
        };
        let name = env_key(id, field);
        if draft.env.contains(&name) {
            draft
                .env
                .set(&name, &env_value)
                .map_err(|e| UsageError(e.to_string()))?;
        } else {
            doc::set(server_table(draft, id)?, key, toml_value);
        }
    }
    for (secret, field, key) in [
        (&spec.access_key, "ACCESS_KEY", "access_key"),
        (&spec.secret_key, "SECRET_KEY", "secret_key"),
    ] {
        let Some(secret) = secret else { continue };
        draft
            .env
            .set_secret(&env_key(id, field), secret)
            .map_err(|e| UsageError(e.to_string()))?;
        draft.env.remove(&env_key(id, &format!("{field}_FILE")));
        if let Some(t) = find_table(draft, id) {
            t.remove(key);
            t.remove(&format!("{key}_file"));
        }
    }
    Ok(())
}

fn find_table(draft: &mut Draft, id: u32) -> Option<&mut Table> {
    draft
        .doc
        .get_mut("servers")
        .and_then(|i| i.as_array_of_tables_mut())
        .and_then(|a| a.iter_mut().find(|t| doc::int_of(t, "id") == Some(i64::from(id))))
}

/// The `[[servers]]` table of `id`, made if missing.
fn server_table(draft: &mut Draft, id: u32) -> anyhow::Result<&mut Table> {
    let array = doc::array_of_tables(&mut draft.doc, "servers").ok_or_else(|| {
        UsageError("`servers` in the TOML file is not a list of [[servers]] tables; edit it by hand".into())
    })?;
    let found = array.iter().position(|t| doc::int_of(t, "id") == Some(i64::from(id)));
    let at = match found {
        Some(i) => i,
        None => {
            let mut t = Table::new();
            doc::set(&mut t, "id", i64::from(id));
            array.push(t);
            array.len() - 1
        }
    };
    array
        .get_mut(at)
        .ok_or_else(|| anyhow::anyhow!("internal error: [[servers]] entry {id} vanished"))
}

fn unknown(draft: &Draft, id: u32) -> UsageError {
    let known: Vec<String> = ids(draft).iter().map(u32::to_string).collect();
    UsageError(format!(
        "no server {id}; configured: {}",
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        }
    ))
}

/// Servers set in the process environment cannot be changed here.
fn refuse_process_env(draft: &Draft, id: u32) -> Result<(), UsageError> {
    let from_env = list(draft)
        .into_iter()
        .any(|s| s.id == id && s.sources.contains(&"environment"));
    if from_env {
        return Err(UsageError(format!(
            "server {id} is set in this shell's environment (S3_SERVER_{id}_*), which configure does not edit: unset those variables first"
        )));
    }
    Ok(())
}

/// Remove server `id` from both files; comments stay.
pub fn remove(draft: &mut Draft, id: u32) -> anyhow::Result<()> {
    if !ids(draft).contains(&id) {
        return Err(unknown(draft, id).into());
    }
    refuse_process_env(draft, id)?;
    doc::remove_tables(&mut draft.doc, "servers", |t| {
        doc::int_of(t, "id") == Some(i64::from(id))
    });
    draft.env.remove_where(|k| env_id(k) == Some(id));
    Ok(())
}

/// The renumbering that moves `id` to `to`: to a free number, or to the
/// place of the server numbered `to`, the others shifting and the set of
/// numbers staying the same.
pub fn plan_move(ids: &BTreeSet<u32>, id: u32, to: u32) -> BTreeMap<u32, u32> {
    if id == to || to == 0 || !ids.contains(&id) {
        return BTreeMap::new();
    }
    if !ids.contains(&to) {
        return BTreeMap::from([(id, to)]);
    }
    let sorted: Vec<u32> = ids.iter().copied().collect();
    let mut order: Vec<u32> = sorted.iter().copied().filter(|&x| x != id).collect();
    let at = sorted.iter().position(|&x| x == to).unwrap_or(order.len());
    order.insert(at.min(order.len()), id);
    order.into_iter().zip(sorted).filter(|(old, new)| old != new).collect()
}

/// Renumber as [`plan_move`] says, in both files.
pub fn move_to(draft: &mut Draft, id: u32, to: u32) -> anyhow::Result<BTreeMap<u32, u32>> {
    let known = ids(draft);
    if !known.contains(&id) {
        return Err(unknown(draft, id).into());
    }
    if to == 0 {
        return Err(UsageError("server numbers start at 1".into()).into());
    }
    let plan = plan_move(&known, id, to);
    for old in plan.keys() {
        refuse_process_env(draft, *old)?;
    }
    if let Some(array) = draft.doc.get_mut("servers").and_then(|i| i.as_array_of_tables_mut()) {
        for t in array.iter_mut() {
            if let Some(new) = doc::int_of(t, "id")
                .and_then(|i| u32::try_from(i).ok())
                .and_then(|old| plan.get(&old))
            {
                doc::set(t, "id", i64::from(*new));
            }
        }
    }
    draft.env.rename(|k| {
        let old = env_id(k)?;
        let new = plan.get(&old)?;
        Some(format!("S3_SERVER_{new}_{}", &k[format!("S3_SERVER_{old}_").len()..]))
    });
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_the_set_of_numbers() {
        let ids: BTreeSet<u32> = [1, 2, 3].into();
        assert_eq!(plan_move(&ids, 3, 1), BTreeMap::from([(3, 1), (1, 2), (2, 3)]));
        assert_eq!(plan_move(&ids, 1, 3), BTreeMap::from([(2, 1), (3, 2), (1, 3)]));
        assert_eq!(plan_move(&ids, 1, 2), BTreeMap::from([(2, 1), (1, 2)]));
        assert_eq!(plan_move(&ids, 2, 7), BTreeMap::from([(2, 7)]));
        assert!(plan_move(&ids, 2, 2).is_empty());
        let gaps: BTreeSet<u32> = [1, 5, 9].into();
        assert_eq!(plan_move(&gaps, 9, 5), BTreeMap::from([(9, 5), (5, 9)]));
    }
}
