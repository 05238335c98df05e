//! Configuration: TOML file + environment (+ a dotenv file) → a validated
//! [`Config`].
//!
//! This is the only module that knows env var names, TOML keys and defaults.
//! Loading is split in two: gathering the sources (file system, process
//! environment) and [`build`], a pure function over them that collects
//! *every* problem before failing. Secrets are held in [`Secret`] so that no
//! `Debug`, log line or error can print them.

mod database;
mod endpoint;
mod env;
mod envfile;
mod load;
mod master;
mod model;
mod node;
mod policy;
mod problem;
mod raw;
mod redact;
mod secret;
mod shape;
mod site;
mod tunables;
mod validate;

pub use database::{DatabaseConfig, check_db_name};
pub use endpoint::Endpoint;
pub use envfile::{
    EnvFile, EnvSources, PACKAGED_ENV_FILE, env_sources, env_var, environment, load_env_file, read_env_file,
};
pub use load::{LoadOptions, is_unconfigured, load, load_master, load_state_dir, load_without_env_file};
pub use master::{MasterServerConfig, RawMasterServer};
pub use model::*;
pub use node::{Mode, NodeConfig, RawMaster};
pub use policy::{KeepWithin, RetentionPolicy, parse_keep_within};
pub use problem::{ConfigError, Problem};
pub use raw::{RawConfig, RawDatabase, RawHooks, RawRestore, RawRetention, RawServer};
pub use redact::{
    REDACTED, RedactedConfig, RedactedDatabase, RedactedHooks, RedactedServer, RedactedSite, RedactedUpload,
};
pub use secret::Secret;
pub use validate::{build, read_secret_file};

pub use crate::layout::is_safe_name;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
