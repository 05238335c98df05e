//! The interactive wizard: a main menu over the sections (S3 Storage,
//! Sites, Node mode), then save. Prompts are dialoguer's, on stderr; keys
//! and tokens are read with hidden prompts (the terminal does not echo
//! them) and are never printed. Runs on a blocking thread; live tests run
//! on the runtime through [`Ui::block_on`].

use super::files::{Draft, Paths};
use super::{node, servers, sites};
use crate::config::{ConfigError, Secret};
use dialoguer::console::Term;
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};
use std::future::Future;

/// The prompts, on the terminal.
pub struct Ui {
    theme: ColorfulTheme,
    term: Term,
    rt: tokio::runtime::Handle,
}

impl Ui {
    pub fn say(&self, line: &str) {
        let _ = self.term.write_line(line);
    }

    /// A menu; `None` when the operator presses Esc or q.
    pub fn select<S: std::fmt::Display>(
        &self,
        prompt: &str,
        items: &[S],
        default: usize,
    ) -> anyhow::Result<Option<usize>> {
        Ok(Select::with_theme(&self.theme)
            .with_prompt(prompt)
            .items(items)
            .default(default.min(items.len().saturating_sub(1)))
            .interact_on_opt(&self.term)?)
    }

    /// A line of text; `default` is accepted with Enter.
    pub fn input(
        &self,
        prompt: &str,
        default: Option<&str>,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> anyhow::Result<String> {
        let mut input = Input::<String>::with_theme(&self.theme).with_prompt(prompt);
        if let Some(d) = default.filter(|d| !d.is_empty()) {
            input = input.default(d.to_string());
        }
        let value = input
            .validate_with(|v: &String| check(v.trim()))
            .interact_text_on(&self.term)?;
        Ok(value.trim().to_string())
    }

    /// Optional text: empty is allowed.
    pub fn input_optional(&self, prompt: &str) -> anyhow::Result<Option<String>> {
        let value = Input::<String>::with_theme(&self.theme)
            .with_prompt(prompt)
            .allow_empty(true)
            .interact_text_on(&self.term)?;
        Ok(Some(value.trim().to_string()).filter(|v| !v.is_empty()))
    }

    /// A secret, not echoed. `keep`: empty input keeps the current one.
    pub fn secret(&self, prompt: &str, keep: bool) -> anyhow::Result<Option<Secret>> {
        let value = Password::with_theme(&self.theme)
            .with_prompt(prompt)
            .allow_empty_password(keep)
            .interact_on(&self.term)?;
        let value = value.trim().to_string();
        Ok(if value.is_empty() {
            None
        } else {
            Some(Secret::new(value))
        })
    }

    pub fn confirm(&self, prompt: &str, default: bool) -> anyhow::Result<bool> {
        Ok(Confirm::with_theme(&self.theme)
            .with_prompt(prompt)
            .default(default)
            .interact_on(&self.term)?)
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// Run the wizard until the operator saves or leaves; the exit code.
pub fn run(paths: Paths, rt: tokio::runtime::Handle) -> anyhow::Result<u8> {
    let ui = Ui {
        theme: ColorfulTheme::default(),
        term: Term::stderr(),
        rt,
    };
    let mut draft = Draft::load(paths)?;
    ui.say("sitebackup configure");
    ui.say(&format!("  TOML file: {}", draft.paths.toml.display()));
    ui.say(&format!("  Env file:  {} (storage keys)", draft.paths.env.display()));
    ui.say("Nothing is written until you choose \"Save and exit\".");
    loop {
        let view = node::show(&draft);
        let items = [
            format!("S3 Storage ({} server(s))", servers::list(&draft).len()),
            format!("Sites ({} site(s))", sites::list(&draft).len()),
            format!("Node mode ({})", view.mode),
            "Save and exit".to_string(),
            "Exit without saving".to_string(),
        ];
        match ui.select("What do you want to set up?", &items, 0)? {
            Some(0) => super::wizard_s3::menu(&ui, &mut draft)?,
            Some(1) => super::wizard_sites::sites_menu(&ui, &mut draft)?,
            Some(2) => super::wizard_sites::node_menu(&ui, &mut draft)?,
            Some(3) => {
                if let Some(code) = save(&ui, &mut draft)? {
                    return Ok(code);
                }
            }
            _ => {
                if !draft.changed() || ui.confirm("Discard your changes?", false)? {
                    ui.say("Nothing was written.");
                    return Ok(0);
                }
            }
        }
    }
}

/// Validate and write; `None` to go back to the menu (invalid).
fn save(ui: &Ui, draft: &mut Draft) -> anyhow::Result<Option<u8>> {
    if !draft.changed() {
        ui.say("Nothing to save.");
        return Ok(Some(0));
    }
    let report = match draft.save() {
        Ok(r) => r,
        Err(e) => match e.downcast_ref::<ConfigError>() {
            Some(ce) => {
                ui.say("The configuration would not be valid; nothing was written:");
                ui.say(&ce.to_string());
                return Ok(None);
            }
            None => return Err(e),
        },
    };
    for line in super::saved_lines(&report) {
        ui.say(&line);
    }
    ui.say("Check it any time with: sitebackup config check && sitebackup servers");
    if let Some(verb) = super::apply_verb(&report)
        && super::daemon_running(&report)
    {
        let why = if verb == "restart" {
            " (the env file is read at start only)"
        } else {
            ""
        };
        if ui.confirm(
            &format!("The daemon is running. Run `systemctl {verb} sitebackup` now{why}?"),
            true,
        )? {
            let status = std::process::Command::new("systemctl")
                .args([verb, "sitebackup"])
                .status();
            match status {
                Ok(s) if s.success() => ui.say(&format!("systemctl {verb} sitebackup: done")),
                Ok(s) => ui.say(&format!(
                    "systemctl {verb} sitebackup failed ({s}); see journalctl -u sitebackup"
                )),
                Err(e) => ui.say(&format!("cannot run systemctl: {e}")),
            }
        }
    }
    Ok(Some(0))
}
