//! The wizard's "Sites" and "Node mode" sections.

use super::files::{Draft, problems_under};
use super::node::{self, NodeSpec};
use super::presets::{self, RETENTIONS, SCHEDULES};
use super::sites::{self, Detection, SiteSpec};
use super::wizard::Ui;
use std::path::{Path, PathBuf};

pub fn sites_menu(ui: &Ui, draft: &mut Draft) -> anyhow::Result<()> {
    loop {
        let list = sites::list(draft);
        if list.is_empty() {
            ui.say("No site yet.");
        } else {
            ui.say("Sites:");
            for s in &list {
                ui.say(&format!(
                    "  - {}: {} (schedule {}{})",
                    s.name,
                    s.path.as_deref().unwrap_or("?"),
                    s.schedule.as_deref().unwrap_or(crate::config::DEFAULT_SCHEDULE),
                    if s.database_off { ", files only" } else { "" }
                ));
            }
        }
        match ui.select("Sites", &["Add a site", "Remove a site", "Back"], 0)? {
            Some(0) => add_site(ui, draft)?,
            Some(1) => {
                let names: Vec<String> = list.iter().map(|s| s.name.clone()).collect();
                if names.is_empty() {
                    ui.say("There is no site yet.");
                } else if let Some(i) = ui.select("Remove which site? (its archives stay)", &names, 0)?
                    && ui.confirm(&format!("Remove site {}?", names[i]), false)?
                    && let Err(e) = sites::remove(draft, &names[i])
                {
                    ui.say(&format!("✘ {e:#}"));
                }
            }
            _ => return Ok(()),
        }
    }
}

fn add_site(ui: &Ui, draft: &mut Draft) -> anyhow::Result<()> {
    let path = ui.input("Site directory (absolute path)", None, |v| {
        sites::check_path(Path::new(v)).map(|_| ())
    })?;
    let path = PathBuf::from(path);
    let mut no_database = false;
    match sites::detect(&path) {
        Detection::WordPress(what) => {
            ui.say(&format!("✔ WordPress detected: {what}."));
            ui.say("  Its database is dumped with every backup (the password stays in wp-config.php).");
        }
        Detection::None => {
            ui.say("No wp-config.php there: the files only (a [sites.database] section adds a database).")
        }
        Detection::Unusable(why) => {
            ui.say(&format!("⚠ {why}"));
            if !ui.confirm("Back up the files only (no database dump)?", true)? {
                ui.say("Fix wp-config.php (or add [sites.database] by hand), then add the site again.");
                return Ok(());
            }
            no_database = true;
        }
    }
    let name = ui.input(
        "Site name (used in object names)",
        Some(&sites::default_name(&path)),
        |v| {
            if crate::config::is_safe_name(v) {
                Ok(())
            } else {
                Err("use only A-Z a-z 0-9 . _ - and do not start with a dot".into())
            }
        },
    )?;
    let mut labels: Vec<String> = SCHEDULES.iter().map(|s| format!("{} ({})", s.label, s.cron)).collect();
    labels.push("Custom cron line (5 fields, or 6 with seconds first)".into());
    let schedule = match ui.select("Schedule (UTC unless `timezone` is set)", &labels, 0)? {
        Some(i) if i < SCHEDULES.len() => SCHEDULES[i].cron.to_string(),
        Some(_) => {
            let line = ui.input("Cron line", None, |v| presets::schedule(v).map(|_| ()))?;
            presets::schedule(&line).map_err(anyhow::Error::msg)?
        }
        None => return Ok(()),
    };
    let labels: Vec<&str> = RETENTIONS.iter().map(|r| r.label).collect();
    let Some(r) = ui.select("Retention", &labels, 0)? else {
        return Ok(());
    };
    let spec = SiteSpec {
        name: name.clone(),
        path,
        schedule,
        retention: (RETENTIONS[r].policy)(),
        no_database,
        exclude: Vec::new(),
    };
    let mut trial = draft.clone();
    if let Err(e) = sites::add(&mut trial, &spec) {
        ui.say(&format!("✘ {e:#}"));
        return Ok(());
    }
    if let Err(e) = trial.validate() {
        let problems = problems_under(&e, &format!("sites[name={name}]"));
        if !problems.is_empty() {
            ui.say("✘ The site's settings are not valid:");
            for p in problems {
                ui.say(&format!("  - {p}"));
            }
            return Ok(());
        }
    }
    *draft = trial;
    ui.say(&format!("✔ Site {name} added."));
    Ok(())
}

pub fn node_menu(ui: &Ui, draft: &mut Draft) -> anyhow::Result<()> {
    let view = node::show(draft);
    match (&view.url, view.mode.as_str()) {
        (Some(url), "node") => ui.say(&format!(
            "This host is a node of {url} (node {}).",
            view.node_uuid.as_deref().unwrap_or("?")
        )),
        _ => ui.say("This host is standalone: it uses its own storage servers."),
    }
    let items = [
        "Make this host a node of a master",
        "Switch back to standalone mode",
        "Back",
    ];
    match ui.select("Node mode", &items, 0)? {
        Some(0) => set_node(ui, draft),
        Some(1) => match node::disable(draft) {
            Ok(()) => {
                ui.say("✔ Standalone mode (the [master] table stays, unused).");
                Ok(())
            }
            Err(e) => {
                ui.say(&format!("✘ {e}"));
                Ok(())
            }
        },
        _ => Ok(()),
    }
}

fn set_node(ui: &Ui, draft: &mut Draft) -> anyhow::Result<()> {
    let current = node::show(draft);
    let mut defaults = (
        current.url.clone(),
        current.node_uuid.clone(),
        current
            .token_file
            .clone()
            .unwrap_or_else(|| draft.paths.default_token_file().display().to_string()),
    );
    let mut token = None;
    loop {
        let url = ui.input("Master URL (https://host:port)", defaults.0.as_deref(), |v| {
            url::Url::parse(v).map(|_| ()).map_err(|e| e.to_string())
        })?;
        let node_uuid = ui.input(
            "Node uuid (from `sitebackup master node add`)",
            defaults.1.as_deref(),
            |v| {
                if crate::layout::is_uuid(v) {
                    Ok(())
                } else {
                    Err("not a uuid like 3d298266-633b-48b6-9662-07a1d9ee1c44".into())
                }
            },
        )?;
        let keep = if token.is_some() {
            " (empty: keep the one typed before)"
        } else {
            ""
        };
        if let Some(t) = ui.secret(&format!("Node token{keep}"), token.is_some())? {
            token = Some(t);
        }
        let token_file = ui.input("Keep the token in (mode 0600)", Some(&defaults.2), |v| {
            if Path::new(v).is_absolute() {
                Ok(())
            } else {
                Err("an absolute path".into())
            }
        })?;
        let ca_file = ui.input_optional("CA bundle to trust for the master (empty: the system's)")?;
        defaults = (Some(url.clone()), Some(node_uuid.clone()), token_file.clone());
        let Some(token) = token.clone() else { continue };
        let spec = NodeSpec {
            url,
            node_uuid,
            token,
            token_file: PathBuf::from(token_file),
            ca_file: ca_file.map(PathBuf::from),
        };
        ui.say("Testing the connection to the master…");
        match ui.block_on(node::test_master(&spec)) {
            Ok(()) => ui.say("✔ The master answered and accepted this node's token."),
            Err(e) => {
                ui.say(&format!("✘ {e}"));
                let items = ["Fix the values", "Save it anyway (untested)", "Cancel"];
                match ui.select("What now?", &items, 0)? {
                    Some(0) => continue,
                    Some(1) => {}
                    _ => return Ok(()),
                }
            }
        }
        let mut trial = draft.clone();
        match node::set(&mut trial, &spec) {
            Ok(()) => {
                *draft = trial;
                ui.say("✔ Node mode set (the local storage servers are ignored in node mode).");
            }
            Err(e) => ui.say(&format!("✘ {e:#}")),
        }
        return Ok(());
    }
}
