//! Validation of one `[[sites]]` entry: name, path, schedule, excludes,
//! database, retention and hooks.

use super::problem::{Problem, problem};
use super::*;
use crate::schedule::Schedule;
use globset::{Glob, GlobSet, GlobSetBuilder};

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
    let mut builder = GlobSetBuilder::new();
    for pattern in &raw.exclude {
        match Glob::new(pattern.trim_start_matches('/')) {
            Ok(g) => {
                builder.add(g);
            }
            Err(e) => problems.push(problem(key("exclude"), None, format!("bad glob {pattern:?}: {e}"))),
        }
    }
    let exclude_set = match builder.build() {
        Ok(set) => set,
        Err(e) => {
            problems.push(problem(key("exclude"), None, e.to_string()));
            GlobSet::empty()
        }
    };
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
        exclude_set,
        database,
        retention,
        hooks,
    })
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
