//! `master rotate-key`: seal every provider key under a new Fernet key,
//! crash-safely and while `serve` runs.
//!
//! 1. Write the key file with the new key first and the old one after it
//!    (atomic rename). From here on both keys decrypt; `serve` re-reads the
//!    file (it watches it, and the command sends it SIGHUP).
//! 2. In one `BEGIN IMMEDIATE` transaction: name the new key as current in
//!    `meta` and re-seal every row with it. `serve` seals new values with
//!    the key `meta` names, inside its own write transaction, so a value it
//!    writes lands either before (and is re-sealed here) or after (and is
//!    sealed with the new key).
//! 3. Check that no row names another key, then write the key file with
//!    the new key alone, and signal `serve` again.
//!
//! A crash before 1 changes nothing; after 1 or 2, running the command
//! again finds two keys in the file and finishes the same rotation with
//! the key already written, instead of starting another.

use super::crypto::KeyRing;
use super::repo::Repo;
use super::{MasterError, MasterResult};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// File in the state directory holding the pid of a running `serve`.
pub const PID_FILE: &str = "serve.pid";

#[derive(Debug, Clone, Serialize)]
pub struct RotateReport {
    pub new_key_id: String,
    pub retired_key_ids: Vec<String>,
    /// Providers whose keys were sealed again.
    pub resealed: usize,
    /// An interrupted rotation was finished.
    pub resumed: bool,
    /// The pid of the `serve` that was told to re-read the key file.
    pub signalled: Option<i32>,
}

/// Rotate (or finish an interrupted rotation). `pause` runs between the
/// steps (tests use it to act in the middle; pass `|_| ()`).
pub fn rotate(state_dir: &Path, key_file: &Path, mut pause: impl FnMut(&str)) -> MasterResult<RotateReport> {
    let repo = Repo::open(state_dir)?;
    let current = KeyRing::load(key_file)?;
    let resumed = current.ids().len() > 1;
    let both = if resumed {
        current
    } else {
        let both = current.with_new_primary(fernet::Fernet::generate_key())?;
        both.store(key_file)?;
        both
    };
    let new_id = both.primary_id().to_string();
    let mut signalled = hangup_serve(state_dir);
    pause("both-keys");
    let resealed = repo.reseal_all(&new_id, |sealed| {
        let plain = both.decrypt(sealed).ok_or_else(|| {
            MasterError::Crypto(format!(
                "a provider key is sealed with a key that {} does not hold; nothing was changed",
                key_file.display()
            ))
        })?;
        both.encrypt_with(&new_id, &plain)
            .ok_or_else(|| MasterError::Crypto("the new key vanished".into()))
    })?;
    pause("resealed");
    both.primary_only()?.store(key_file)?;
    signalled = hangup_serve(state_dir).or(signalled);
    Ok(RotateReport {
        retired_key_ids: both.ids().into_iter().skip(1).collect(),
        new_key_id: new_id,
        resealed,
        resumed,
        signalled,
    })
}

/// Send SIGHUP to the `serve` whose pid is in the state directory, if it
/// runs (its command line must say `master` and `serve`).
pub fn hangup_serve(state_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(state_dir.join(PID_FILE)).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = args.iter().any(|a| *a == b"master") && args.iter().any(|a| *a == b"serve");
    if !ours {
        return None;
    }
    let pid_t = rustix::process::Pid::from_raw(pid)?;
    rustix::process::kill_process(pid_t, rustix::process::Signal::HUP).ok()?;
    Some(pid)
}

/// Write `{state_dir}/serve.pid`; removed again when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(state_dir: &Path) -> std::io::Result<PidFile> {
        let path = state_dir.join(PID_FILE);
        std::fs::write(&path, format!("{}\n", std::process::id()))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
