//! What the admin subcommands do (`master init`, `token …`, `node …`),
//! straight on the database in transactions: safe while `serve` runs.

use super::crypto::{KeyRing, generate_token, hash_token};
use super::repo::{NodeRow, Repo, Role};
use super::{MasterError, MasterResult};
use crate::config::MasterServerConfig;
use crate::protocol::SecretString;
use std::path::PathBuf;

/// What `master init` made.
#[derive(Debug)]
pub struct Initialised {
    pub database: PathBuf,
    pub key_file: PathBuf,
    /// The key file was written now (not one the operator put there).
    pub key_created: bool,
    pub token: SecretString,
}

/// Create the database and the key file (0600) and the first super-admin
/// token. Refused when the database already names a key. A run that
/// crashed half-way can be repeated.
pub fn init(cfg: &MasterServerConfig) -> MasterResult<Initialised> {
    let repo = Repo::create(&cfg.state_dir)?;
    let key_created = !cfg.key_file.exists();
    let ring = if key_created {
        if let Some(dir) = cfg.key_file.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| MasterError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        }
        let ring = KeyRing::generate()?;
        ring.store(&cfg.key_file)?;
        ring
    } else {
        KeyRing::load(&cfg.key_file)?
    };
    if !repo.init_key_id(ring.primary_id())? {
        return Err(MasterError::Setup(format!(
            "{} is already initialised; make another super-admin token with `sitebackup master token create`",
            repo.path().display()
        )));
    }
    let token = generate_token()?;
    repo.create_token(&hash_token(token.expose()), Role::SuperAdmin, None, "init")?;
    Ok(Initialised {
        database: repo.path().to_path_buf(),
        key_file: cfg.key_file.clone(),
        key_created,
        token,
    })
}

/// A new super-admin token.
pub fn create_admin_token(repo: &Repo, label: &str) -> MasterResult<(i64, SecretString)> {
    let token = generate_token()?;
    let id = repo.create_token(&hash_token(token.expose()), Role::SuperAdmin, None, label)?;
    Ok((id, token))
}

/// A new node and its token.
pub fn add_node(repo: &Repo, name: &str, quota_bytes: Option<u64>) -> MasterResult<(NodeRow, SecretString)> {
    let name = super::name_field("name", name)?;
    let token = generate_token()?;
    let node = repo.create_node(&name, quota_bytes, &token)?;
    Ok((node, token))
}

/// Remove a node by name or uuid.
pub fn remove_node(repo: &Repo, name_or_uuid: &str, force: bool) -> MasterResult<(NodeRow, u64)> {
    let node = repo
        .find_node(name_or_uuid)?
        .ok_or_else(|| MasterError::NotFound(format!("no node named {name_or_uuid:?}")))?;
    let forgotten = repo.delete_node(node.node_uuid, force)?;
    Ok((node, forgotten))
}
