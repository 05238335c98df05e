//! Configuration problems: each names the TOML key and the env var to fix.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the configuration, naming where to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The TOML key, e.g. `servers[id=2].bucket`.
    pub key: String,
    /// The environment variable for the same setting, if there is one.
    pub env: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env {
            Some(env) => write!(f, "{} (env {}): {}", self.key, env, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("cannot read env file {path}: {message}")]
    EnvFile { path: PathBuf, message: String },
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Invalid(p) => p.clone(),
            other => vec![Problem {
                key: "config".into(),
                env: None,
                message: other.to_string(),
            }],
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    let mut s = format!("invalid configuration ({} problem(s)):", problems.len());
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(&p.to_string());
    }
    s
}

pub(super) fn problem(key: impl Into<String>, env: Option<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        env,
        message: message.into(),
    }
}

/// One setting read from its env variable, else the TOML, for
/// [`seconds`].
pub(super) struct Setting {
    /// The TOML key, e.g. `master.sync_interval_secs`.
    pub key: String,
    /// The env variable's name.
    pub env: Option<String>,
    /// The env variable's value, if set (it wins over the TOML).
    pub env_value: Option<String>,
}

/// A whole number of seconds between 1 and `max`; a problem naming the key
/// and env variable otherwise (and `default` is used).
pub(super) fn seconds(setting: Setting, toml: Option<u64>, default: u64, max: u64, problems: &mut Vec<Problem>) -> u64 {
    let Setting { key, env, env_value } = setting;
    let value = match env_value {
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                problems.push(problem(
                    key,
                    env,
                    format!("expected a whole number of seconds, found {v:?}"),
                ));
                return default;
            }
        },
        None => toml.unwrap_or(default),
    };
    if !(1..=max).contains(&value) {
        problems.push(problem(
            key,
            env,
            format!("must be between 1 and {max} seconds, found {value}"),
        ));
    }
    value
}
