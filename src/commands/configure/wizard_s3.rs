//! The wizard's "S3 Storage" section: list, add (with provider presets),
//! edit, remove and reorder servers. Every new or changed server is tested
//! live before it is kept; a failure shows the advice for its kind and
//! lets the operator fix the values or keep the server anyway.

use super::check::{self, TestFailure};
use super::files::Draft;
use super::presets::{self, PROVIDERS, ProviderPreset};
use super::servers::{self, ServerSpec, ServerView};
use super::wizard::Ui;
use crate::config::Endpoint;

pub fn menu(ui: &Ui, draft: &mut Draft) -> anyhow::Result<()> {
    loop {
        if super::node::show(draft).mode == "node" {
            ui.say("Node mode is on: these servers are ignored, storage comes from the master.");
        }
        let list = servers::list(draft);
        if list.is_empty() {
            ui.say("No storage server yet.");
        } else {
            ui.say("Storage servers, in the order they are tried:");
            for s in &list {
                ui.say(&format!(
                    "  {}. {} region {} limit {} GB",
                    s.id,
                    s.label(),
                    s.region.as_deref().unwrap_or("?"),
                    s.storage_limit_gb.unwrap_or(crate::config::DEFAULT_STORAGE_LIMIT_GB)
                ));
            }
        }
        let items = [
            "Add a server",
            "Edit a server",
            "Remove a server",
            "Move a server up (tried earlier)",
            "Move a server down (tried later)",
            "Back",
        ];
        match ui.select("S3 Storage", &items, 0)? {
            Some(0) => add(ui, draft)?,
            Some(1) => {
                if let Some(s) = pick(ui, &list, "Edit which server?")? {
                    edit(ui, draft, &s)?;
                }
            }
            Some(2) => {
                if let Some(s) = pick(ui, &list, "Remove which server?")?
                    && ui.confirm(&format!("Remove {}?", s.label()), false)?
                {
                    report(ui, servers::remove(draft, s.id));
                }
            }
            Some(i @ (3 | 4)) => {
                if let Some(s) = pick(ui, &list, "Move which server?")? {
                    let at = list.iter().position(|x| x.id == s.id).unwrap_or(0);
                    let neighbour = if i == 3 { at.checked_sub(1) } else { Some(at + 1) };
                    match neighbour.and_then(|n| list.get(n)) {
                        Some(other) => report(ui, servers::move_to(draft, s.id, other.id).map(|_| ())),
                        None => ui.say("It is already there."),
                    }
                }
            }
            _ => return Ok(()),
        }
    }
}

fn report(ui: &Ui, result: anyhow::Result<()>) {
    if let Err(e) = result {
        ui.say(&format!("✘ {e:#}"));
    }
}

fn pick(ui: &Ui, list: &[ServerView], prompt: &str) -> anyhow::Result<Option<ServerView>> {
    if list.is_empty() {
        ui.say("There is no server yet.");
        return Ok(None);
    }
    let labels: Vec<String> = list.iter().map(ServerView::label).collect();
    Ok(ui.select(prompt, &labels, 0)?.and_then(|i| list.get(i).cloned()))
}

fn add(ui: &Ui, draft: &mut Draft) -> anyhow::Result<()> {
    let labels: Vec<&str> = PROVIDERS.iter().map(|p| p.label).collect();
    let Some(choice) = ui.select("Provider", &labels, 0)? else {
        return Ok(());
    };
    let preset = &PROVIDERS[choice];
    ui.say(&format!("Keys: {}.", preset.keys_hint));
    let mut spec = form(ui, preset, &ServerSpec::default(), true)?;
    loop {
        let mut trial = draft.clone();
        let id = match servers::add(&mut trial, None, &spec) {
            Ok(id) => id,
            Err(e) => {
                ui.say(&format!("✘ {e:#}"));
                spec = form(ui, preset, &spec, false)?;
                continue;
            }
        };
        match test(ui, &trial, id)? {
            Verdict::Keep => {
                *draft = trial;
                return Ok(());
            }
            Verdict::Fix => spec = form(ui, preset, &spec, false)?,
            Verdict::Drop => return Ok(()),
        }
    }
}

fn edit(ui: &Ui, draft: &mut Draft, server: &ServerView) -> anyhow::Result<()> {
    let preset = presets::provider(crate::cli::Provider::Other);
    let current = ServerSpec {
        endpoint: server.endpoint.clone(),
        region: server.region.clone(),
        bucket: server.bucket.clone(),
        storage_limit_gb: server.storage_limit_gb,
        ..ServerSpec::default()
    };
    let mut spec = form(ui, preset, &current, false)?;
    loop {
        let mut trial = draft.clone();
        if let Err(e) = servers::edit(&mut trial, server.id, &spec) {
            ui.say(&format!("✘ {e:#}"));
            return Ok(());
        }
        match test(ui, &trial, server.id)? {
            Verdict::Keep => {
                *draft = trial;
                return Ok(());
            }
            Verdict::Fix => spec = form(ui, preset, &spec, false)?,
            Verdict::Drop => return Ok(()),
        }
    }
}

enum Verdict {
    Keep,
    Fix,
    Drop,
}

/// The live test, and what to do when it fails.
fn test(ui: &Ui, trial: &Draft, id: u32) -> anyhow::Result<Verdict> {
    ui.say(&format!(
        "Testing server {id} (the same check as `sitebackup servers`)…"
    ));
    let failure = match ui.block_on(check::test_server(trial, id)) {
        Ok(name) => {
            ui.say(&format!("✔ {name}: OK (reachable, credentials valid, bucket exists)"));
            return Ok(Verdict::Keep);
        }
        Err(f) => f,
    };
    ui.say(&format!("✘ Test failed: {failure}"));
    ui.say("Troubleshooting:");
    for line in failure.advice() {
        ui.say(&format!("  - {line}"));
    }
    let mut items = vec!["Fix the values", "Discard this server"];
    if !matches!(failure, TestFailure::Invalid(_)) {
        items.insert(1, "Save it anyway (untested)");
    }
    Ok(match ui.select("What now?", &items, 0)?.map(|i| items[i]) {
        Some("Fix the values") => Verdict::Fix,
        Some("Save it anyway (untested)") => Verdict::Keep,
        _ => Verdict::Drop,
    })
}

/// Ask for a server's values; `current` fills the defaults. Keys are
/// asked hidden; `new`: they are required, else empty keeps them.
fn form(ui: &Ui, preset: &ProviderPreset, current: &ServerSpec, new: bool) -> anyhow::Result<ServerSpec> {
    ui.say(&format!("Region: {}.", preset.region_hint));
    let region = ui.input("Region", current.region.as_deref().or(preset.region), non_empty)?;
    let suggested = current.endpoint.clone().or_else(|| preset.endpoint.map(|f| f(&region)));
    ui.say(&format!("Endpoint: {}.", preset.endpoint_hint));
    let endpoint = ui.input("Endpoint", suggested.as_deref(), |v| {
        Endpoint::parse(v).map(|_| ()).map_err(|e| e.to_string())
    })?;
    let bucket = ui.input("Bucket", current.bucket.as_deref(), |v| {
        if (3..=63).contains(&v.len()) {
            Ok(())
        } else {
            Err("a bucket name has 3 to 63 characters".into())
        }
    })?;
    let limit = current
        .storage_limit_gb
        .unwrap_or(crate::config::DEFAULT_STORAGE_LIMIT_GB)
        .to_string();
    let limit = ui.input(
        "Storage limit in GB (this host's share of the bucket)",
        Some(&limit),
        |v| match v.parse::<f64>() {
            Ok(g) if g.is_finite() && g > 0.0 => Ok(()),
            _ => Err("a positive number of GB, such as 100 or 0.5".into()),
        },
    )?;
    let keep = if new { "" } else { " (empty: keep the current one)" };
    let access_key = ui.secret(&format!("Access key id{keep}"), !keep.is_empty())?;
    let secret_key = ui.secret(&format!("Secret key{keep}"), !keep.is_empty())?;
    Ok(ServerSpec {
        endpoint: Some(endpoint),
        region: Some(region),
        bucket: Some(bucket),
        storage_limit_gb: limit.parse().ok(),
        path_style: current.path_style,
        access_key: access_key.or_else(|| current.access_key.clone()),
        secret_key: secret_key.or_else(|| current.secret_key.clone()),
    })
}

fn non_empty(v: &str) -> Result<(), String> {
    if v.is_empty() { Err("required".into()) } else { Ok(()) }
}
