//! Which installation this is, and which prefixes it owns.
//!
//! Two hosts cloned from one disk image share a host name, and so a
//! default `host_id`: without more, one host's `reconcile` imports the
//! other's archives and its `prune` deletes them. So each installation has
//! an **install id**, a random UUID kept in `{state_dir}/install-id.json`
//! together with the machine id (`/etc/machine-id`) it was made on. When the
//! machine id differs from the recorded one (a cloned disk booted on other
//! hardware gets a new machine id), a new install id is made.
//!
//! Every archive carries the install id in its object metadata
//! (`install-id`), and the first backup under a prefix writes an **owner
//! marker**, `{prefix}.sitebackup-owner`, holding the install id, host name
//! and machine id. A backup that finds the marker owned by another install
//! refuses to run; `reconcile --adopt` takes a prefix over (a rebuilt host
//! with an empty `state_dir`), recording the previous owner as adopted.
//!
//! Pure decisions ([`Ownership::of`], [`may_touch`]) are separate from the
//! file and the network.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File holding the install id, under `state_dir`.
pub const INSTALL_FILE: &str = "install-id.json";
/// Object metadata key carrying the install id of the writer.
pub const METADATA_KEY: &str = "install-id";
/// Where the machine id is read (systemd's `machine-id(5)`).
pub const MACHINE_ID_PATH: &str = "/etc/machine-id";
/// Overrides [`MACHINE_ID_PATH`] (containers without one, and tests).
pub const MACHINE_ID_ENV: &str = "SITEBACKUP_MACHINE_ID_FILE";
/// Largest owner marker read back.
const MAX_MARKER: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// This installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    pub install_id: String,
    /// The machine id it was created on (`None` where there is none).
    pub machine_id: Option<String>,
    pub host: String,
    pub created_at: String,
}

impl Installation {
    /// The owner marker this installation writes.
    pub fn marker(&self) -> OwnerMarker {
        OwnerMarker {
            install_id: self.install_id.clone(),
            host: self.host.clone(),
            machine_id: self.machine_id.clone(),
            written_at: crate::catalog::now_rfc3339(),
        }
    }
}

/// The machine id, trimmed; `None` when unreadable or empty.
pub fn machine_id() -> Option<String> {
    let path = crate::config::env_var(MACHINE_ID_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(MACHINE_ID_PATH));
    let text = std::fs::read_to_string(path).ok()?;
    let id = text.trim();
    (!id.is_empty() && id.len() <= 128).then(|| id.to_string())
}

/// Read this installation's id from `state_dir`, creating it (0600) when
/// missing, unreadable, or made on another machine.
pub fn load_or_create(state_dir: &Path) -> Result<Installation, InstallError> {
    let path = state_dir.join(INSTALL_FILE);
    let machine = machine_id();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(found) = serde_json::from_str::<Installation>(&text)
        && crate::layout::is_uuid(&found.install_id)
    {
        if found.machine_id == machine {
            return Ok(Installation { host, ..found });
        }
        tracing::warn!(
            previous = %found.install_id,
            "The machine id changed since this state directory was made (a cloned disk?): this host gets a new install id."
        );
    }
    let install = Installation {
        install_id: uuid::Uuid::new_v4().to_string(),
        machine_id: machine,
        host,
        created_at: crate::catalog::now_rfc3339(),
    };
    write_private(&path, &serde_json::to_vec_pretty(&install).unwrap_or_default())?;
    Ok(install)
}

/// Write `data` to `path` atomically, mode 0600.
fn write_private(path: &Path, data: &[u8]) -> Result<(), InstallError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what, source| InstallError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        crate::private::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename into", e))
}

/// The content of `{prefix}.sitebackup-owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerMarker {
    pub install_id: String,
    pub host: String,
    pub machine_id: Option<String>,
    pub written_at: String,
}

impl OwnerMarker {
    /// Parse a marker read from a bucket; `None` when it is not one.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_MARKER {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Who owns a prefix on one server, as seen by this installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// No marker: nobody has claimed it with this version.
    Unclaimed,
    /// This install, or one it adopted.
    Ours,
    /// Another installation's.
    Foreign(OwnerMarker),
}

impl Ownership {
    pub fn of(marker: Option<&OwnerMarker>, me: &Installation, adopted: &[String]) -> Self {
        match marker {
            None => Ownership::Unclaimed,
            Some(m) if m.install_id == me.install_id || adopted.contains(&m.install_id) => Ownership::Ours,
            Some(m) => Ownership::Foreign(m.clone()),
        }
    }
}

/// May this installation import, delete or abort an object whose metadata
/// names `writer` as its install id? Its own and adopted installs' objects
/// always; objects without an install id (older versions, the original
/// tool) only under a prefix it owns or that nobody claimed.
pub fn may_touch(writer: Option<&str>, ownership: &Ownership, me: &Installation, adopted: &[String]) -> bool {
    match writer {
        Some(id) => id == me.install_id || adopted.iter().any(|a| a == id),
        None => !matches!(ownership, Ownership::Foreign(_)),
    }
}

/// The operator's message for a prefix owned by another installation.
pub fn foreign_owner_message(prefix: &str, server: &str, owner: &OwnerMarker, me: &Installation) -> String {
    format!(
        "{prefix} on {server} belongs to another installation (host {:?}, install id {}), not to this one (host {:?}, install id {}). \
         Two hosts must not share a prefix: set a distinct host_id on one of them, \
         or run `sitebackup reconcile --adopt` if this host replaces the other",
        owner.host, owner.install_id, me.host, me.install_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Installation {
        Installation {
            install_id: "11111111-1111-4111-8111-111111111111".into(),
            machine_id: Some("m1".into()),
            host: "web1".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn marker(id: &str) -> OwnerMarker {
        OwnerMarker {
            install_id: id.into(),
            host: "web1".into(),
            machine_id: None,
            written_at: "t".into(),
        }
    }

    #[test]
    fn ownership_and_what_may_be_touched() {
        let me = me();
        let other = "22222222-2222-4222-8222-222222222222".to_string();
        let adopted = vec!["33333333-3333-4333-8333-333333333333".to_string()];
        assert_eq!(Ownership::of(None, &me, &adopted), Ownership::Unclaimed);
        assert_eq!(
            Ownership::of(Some(&marker(&me.install_id)), &me, &adopted),
            Ownership::Ours
        );
        assert_eq!(
            Ownership::of(Some(&marker(&adopted[0])), &me, &adopted),
            Ownership::Ours
        );
        let foreign = Ownership::of(Some(&marker(&other)), &me, &adopted);
        assert!(matches!(foreign, Ownership::Foreign(_)));

        for own in [Ownership::Unclaimed, Ownership::Ours, foreign.clone()] {
            assert!(may_touch(Some(&me.install_id), &own, &me, &adopted));
            assert!(may_touch(Some(&adopted[0]), &own, &me, &adopted));
            assert!(!may_touch(Some(&other), &own, &me, &adopted));
        }
        assert!(may_touch(None, &Ownership::Ours, &me, &adopted));
        assert!(may_touch(None, &Ownership::Unclaimed, &me, &adopted));
        assert!(!may_touch(None, &foreign, &me, &adopted));
    }

    #[test]
    fn the_install_id_survives_a_restart_and_changes_with_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(crate::layout::is_uuid(&first.install_id), "{}", first.install_id);
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(again.install_id, first.install_id);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(INSTALL_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A clone: the recorded machine id no longer matches.
        let path = dir.path().join(INSTALL_FILE);
        let mut recorded: Installation = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        recorded.machine_id = Some("some-other-machine".into());
        std::fs::write(&path, serde_json::to_vec(&recorded).unwrap()).unwrap();
        let cloned = load_or_create(dir.path()).unwrap();
        assert_ne!(cloned.install_id, first.install_id);
    }

    #[test]
    fn markers_round_trip_and_junk_is_not_one() {
        let m = me().marker();
        assert_eq!(OwnerMarker::parse(&m.to_bytes()), Some(m));
        assert_eq!(OwnerMarker::parse(b"not json"), None);
        assert_eq!(OwnerMarker::parse(&vec![b' '; MAX_MARKER + 1]), None);
    }
}
