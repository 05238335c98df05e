//! Validation of one `[[sites]]` entry: name, path, schedule, excludes,
//! database, retention and hooks.

use super::problem::{Problem, problem};
use super::*;
use crate::archive::exclude::{ExcludeRules, RuleSource, read_rules_file};
use crate::schedule::Schedule;

pub(super) fn build_site(
    idx: usize,
    raw: raw::RawSite,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Option<SiteConfig> {
    let before = problems.len();
    let label = raw
        .name
        .as_ref()
        .map_or_else(|| idx.to_string(), |n| format!("name={n}"));
    let key = |f: &str| format!("sites[{label}].{f}");
    let name = match raw.name {
        Some(n) if is_safe_name(&n) => Some(n),
        Some(n) => {
            problems.push(problem(
                key("name"),
                None,
                format!("{n:?} must use only A-Z a-z 0-9 . _ -"),
            ));
            None
        }
        None => {
            problems.push(problem(key("name"), None, "missing (required)"));
            None
        }
    };
    let path = match raw.path {
        Some(p) if !p.is_absolute() => {
            problems.push(problem(
                key("path"),
                None,
                format!("must be absolute, found {}", p.display()),
            ));
            None
        }
        Some(p) => {
            // A missing site (an unmounted volume, a site being moved) must
            // not stop the other sites, restore or list: a warning here, and
            // an error only for a backup of this site.
            if !p.is_dir() {
                warnings.push(format!(
                    "{}: {} is not a readable directory; backups of this site will fail until it is",
                    key("path"),
                    p.display()
                ));
            }
            Some(p)
        }
        None => {
            problems.push(problem(key("path"), None, "missing (required)"));
            None
        }
    };
    let schedule = match Schedule::parse(raw.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE)) {
        Ok(s) => Some(s),
        Err(msg) => {
            problems.push(problem(key("schedule"), None, msg));
            None
        }
    };
    let excludes = build_excludes(&raw.exclude, raw.exclude_file.as_deref(), &key, problems);
    let retention = match raw.retention.as_ref().map(RetentionPolicy::from_raw) {
        Some(Ok(policy)) => Some(policy),
        Some(Err(msg)) => {
            problems.push(problem(key("retention.keep_within"), None, msg));
            None
        }
        None => None,
    };
    let database = match raw.database.map(DatabaseConfig::from_raw) {
        Some(Ok(db)) => Some(db),
        Some(Err(found)) => {
            for (k, msg) in found {
                problems.push(problem(key(k), None, msg));
            }
            None
        }
        None => None,
    };
    let hooks = build_hooks(raw.hooks.unwrap_or_default(), &key, problems);
    if problems.len() > before {
        return None;
    }
    Some(SiteConfig {
        name: name?,
        path: path?,
        schedule: schedule?,
        exclude: raw.exclude,
        exclude_file: raw.exclude_file,
        excludes,
        database,
        retention,
        hooks,
    })
}

/// `exclude_file`'s lines, then `exclude` (the later wins, as in a
/// `.gitignore`), each line checked. The exclude file is read here, once
/// per load: an edit takes effect on the next reload.
fn build_excludes(
    exclude: &[String],
    exclude_file: Option<&std::path::Path>,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<Problem>,
) -> ExcludeRules {
    let mut rules = ExcludeRules::default();
    if let Some(path) = exclude_file {
        if !path.is_absolute() {
            problems.push(problem(
                key("exclude_file"),
                None,
                format!("must be absolute, found {}", path.display()),
            ));
        } else {
            match read_rules_file(path) {
                Ok(text) => {
                    if let Err(bad) = rules.add(RuleSource::ExcludeFile(path.to_path_buf()), text.lines()) {
                        for b in bad {
                            problems.push(problem(key("exclude_file"), None, format!("{}: {b}", path.display())));
                        }
                    }
                }
                Err(e) => problems.push(problem(key("exclude_file"), None, e)),
            }
        }
    }
    if let Err(bad) = rules.add(RuleSource::Config, exclude.iter().map(String::as_str)) {
        for b in bad {
            problems.push(problem(
                key("exclude"),
                None,
                format!("pattern {}", b.trim_start_matches("line ")),
            ));
        }
    }
    rules
}

pub(super) fn build_hooks(raw: RawHooks, key: &dyn Fn(&str) -> String, problems: &mut Vec<Problem>) -> HooksConfig {
    let timeout_secs = raw.timeout_secs.unwrap_or(DEFAULT_HOOK_TIMEOUT_SECS);
    if !(1..=MAX_HOOK_TIMEOUT_SECS).contains(&timeout_secs) {
        problems.push(problem(
            key("hooks.timeout_secs"),
            None,
            format!("must be between 1 and {MAX_HOOK_TIMEOUT_SECS} seconds, found {timeout_secs}"),
        ));
    }
    for (stage, commands) in [
        ("before", &raw.before),
        ("after", &raw.after),
        ("on_error", &raw.on_error),
    ] {
        if let Some(i) = commands.iter().position(|c| c.expose().trim().is_empty()) {
            problems.push(problem(
                key(&format!("hooks.{stage}")),
                None,
                format!("command #{} is empty", i + 1),
            ));
        }
    }
    HooksConfig {
        before: raw.before,
        after: raw.after,
        on_error: raw.on_error,
        timeout_secs,
        before_optional: raw.before_optional.unwrap_or(false),
    }
}
