//! The TOML file's shape: every unknown key and every value of the wrong
//! type, all in one run, each with its key path and, for a misspelt key,
//! the key it probably meant (`stat_dir` → `state_dir`).
//!
//! serde stops at the first error, so [`deserialize`] asks it again with the
//! offending key taken out, until the rest deserializes. The known keys of a
//! table come from serde's own `unknown field` message, so there is no
//! second list of keys to keep in step with [`RawConfig`].
//!
//! The file is read by the `config` crate; its values are handed to serde
//! as a strict [`toml::Value`], because `config` would turn `schedule = 5`
//! into the string `"5"`.

use super::RawConfig;
use super::problem::{Problem, problem};
use serde_path_to_error::Segment;

/// More errors than this in one file: report these and stop.
const MAX_PROBLEMS: usize = 100;

/// `value` as a [`RawConfig`], or every shape problem in it.
pub(super) fn deserialize(mut value: toml::Value) -> Result<RawConfig, Vec<Problem>> {
    let mut problems = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, RawConfig>(value.clone()) {
            Ok(raw) if problems.is_empty() => return Ok(raw),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let key = key_path(&segments, &value);
        let message = error.inner().to_string();
        let message = match unknown_field(&message) {
            Some((field, known)) => unknown_key_message(&field, &known),
            None => scrub_quoted(&message),
        };
        problems.push(problem(key, None, message));
        // Take the offending key out and ask again, so the next problem
        // shows; a path that cannot be taken out ends the search.
        if problems.len() >= MAX_PROBLEMS || !remove(&mut value, &segments) {
            return Err(problems);
        }
    }
}

/// `servers[id=2].bucket`, `sites[name=blog].retention.keep_daily`: array
/// entries are named by their `id` or `name` when they have one.
pub(crate) fn key_path(segments: &[Segment], root: &toml::Value) -> String {
    let mut out = String::new();
    let mut at = Some(root);
    for segment in segments {
        match segment {
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
                at = at.and_then(|v| v.get(key.as_str()));
            }
            Segment::Seq { index } => {
                let entry = at.and_then(|v| v.get(*index));
                out.push_str(&entry_label(entry, *index));
                at = entry;
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => {
                out.push_str(".?");
                at = None;
            }
        }
    }
    if out.is_empty() { "config".to_string() } else { out }
}

/// `[id=2]`, `[name=blog]`, or `[3]` for an entry with neither.
fn entry_label(entry: Option<&toml::Value>, index: usize) -> String {
    let field = |name: &str| entry.and_then(|e| e.get(name));
    if let Some(id) = field("id").and_then(toml::Value::as_integer) {
        format!("[id={id}]")
    } else if let Some(name) = field("name").and_then(toml::Value::as_str) {
        format!("[name={name}]")
    } else {
        format!("[{index}]")
    }
}

/// The name and the known names in serde's ``unknown field `x`, expected
/// one of `a`, `b` `` (or ``expected `a` or `b` ``, or `there are no
/// fields`).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let known = rest.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((field.to_string(), known))
}

fn unknown_key_message(field: &str, known: &[String]) -> String {
    match did_you_mean(field, known.iter().map(String::as_str)) {
        Some(best) => format!("unknown key {field:?}; did you mean {best:?}?"),
        None if known.is_empty() => format!("unknown key {field:?}: this table takes no keys"),
        None => format!("unknown key {field:?}; known keys here: {}", known.join(", ")),
    }
}

/// The candidate closest to `given`, if it is close enough to be a typo:
/// at most a third of the letters differ (and at least one may).
pub(crate) fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    let limit = (given.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&given, &c.to_ascii_lowercase()), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// serde quotes a string value it could not use (`invalid type: string
/// "…"`); the value may be a secret put under the wrong key, so drop it.
fn scrub_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push('…');
            }
            ('"', true) => quoted = false,
            (c, false) => out.push(c),
            (_, true) => {}
        }
    }
    out
}

/// Take the value at `segments` out of `root`; false if there is none.
fn remove(root: &mut toml::Value, segments: &[Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut at = root;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => at.get_mut(key.as_str()),
            Segment::Seq { index } => at.get_mut(*index),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    match (last, at) {
        (Segment::Map { key }, toml::Value::Table(table)) => table.remove(key.as_str()).is_some(),
        (Segment::Seq { index }, toml::Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        let value: toml::Value = toml::from_str(text).unwrap();
        deserialize(value).err().unwrap_or_default()
    }

    #[test]
    fn every_unknown_key_is_reported_with_a_suggestion() {
        let found = problems(
            "stat_dir = \"/x\"\nhost_idd = \"h\"\n[upload]\npart_sise_mb = 5\n\
             [[servers]]\nid = 1\nstorage_limt_gb = 3\n[[sites]]\nname = \"blog\"\nschedul = \"x\"\nzzzzzz = 1\n",
        );
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        let expect = [
            ("stat_dir", "\"state_dir\""),
            ("host_idd", "\"host_id\""),
            ("upload.part_sise_mb", "\"part_size_mb\""),
            ("servers[id=1].storage_limt_gb", "\"storage_limit_gb\""),
            ("sites[name=blog].schedul", "\"schedule\""),
        ];
        for (key, suggestion) in expect {
            assert!(
                found
                    .iter()
                    .any(|p| p.key == key && p.message.contains(&format!("did you mean {suggestion}"))),
                "{key}: {shown:#?}"
            );
        }
        let far = found
            .iter()
            .find(|p| p.key == "sites[name=blog].zzzzzz")
            .expect("zzzzzz");
        assert!(far.message.contains("known keys here: name, path"), "{far}");
        assert_eq!(found.len(), 6, "{shown:#?}");
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_the_key() {
        let found = problems("[[sites]]\nname = \"blog\"\nschedule = 5\n[upload]\nconcurrency = \"two\"\n");
        let by_key = |key: &str| {
            found
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("{key}: {found:?}"))
        };
        assert_eq!(found.len(), 2, "{found:?}");
        let schedule = by_key("sites[name=blog].schedule");
        assert!(schedule.message.contains("invalid type: integer `5`"), "{schedule}");
        // A quoted value is never echoed: it may be a misplaced secret.
        let concurrency = by_key("upload.concurrency");
        assert!(!concurrency.message.contains("two"), "{concurrency}");
    }

    #[test]
    fn a_clean_file_deserializes() {
        let raw =
            deserialize(toml::from_str("state_dir = \"/s\"\n[[servers]]\nid = 2\nstorage_limit_gb = 100\n").unwrap())
                .unwrap();
        assert_eq!(raw.servers[0].storage_limit_gb, Some(100.0));
    }

    #[test]
    fn suggestions_need_a_near_miss() {
        assert_eq!(did_you_mean("stat_dir", ["state_dir", "host_id"]), Some("state_dir"));
        assert_eq!(did_you_mean("STATE_DIR", ["state_dir"]), Some("state_dir"));
        assert_eq!(did_you_mean("bucketname", ["bucket", "region"]), None);
    }
}
