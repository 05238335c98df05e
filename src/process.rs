//! Child processes run in their own process group (hooks, dump tools), and
//! stopping the whole group when a time limit or a cancel hits, so nothing
//! the child started lingers. They start with an allow-listed environment
//! ([`inherited_env`]): nothing else of sitebackup's environment (storage
//! credentials, `LD_PRELOAD`, …) reaches them.

use rustix::process::{Pid, Signal, kill_process_group};
use std::time::Duration;

/// The variables a child keeps from sitebackup's environment. Callers
/// `env_clear()` first and add their own (the hook variables, the database
/// tools' private `HOME`).
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG"];

/// `PATH` when sitebackup has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The allow-listed part of this process's environment ([`INHERITED_ENV`]),
/// with a default `PATH` when there is none.
pub fn inherited_env() -> Vec<(&'static str, std::ffi::OsString)> {
    let mut out: Vec<_> = INHERITED_ENV
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (*name, v)))
        .collect();
    if !out.iter().any(|(name, _)| *name == "PATH") {
        out.push(("PATH", DEFAULT_PATH.into()));
    }
    out
}

/// How long a group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// The group of a child started with `process_group(0)`.
pub fn group_of(child: &tokio::process::Child) -> Option<Pid> {
    child.id().and_then(|id| Pid::from_raw(id as i32))
}

/// SIGTERM the process group, SIGKILL it after [`KILL_GRACE`].
pub async fn stop_group(pgid: Option<Pid>, child: &mut tokio::process::Child) {
    let signal = |sig: Signal| {
        if let Some(pgid) = pgid {
            // ESRCH (already gone) is fine.
            let _ = kill_process_group(pgid, sig);
        }
    };
    signal(Signal::TERM);
    let exited = tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok();
    // Also kill what the child left behind in the group.
    signal(Signal::KILL);
    if !exited {
        let _ = child.kill().await;
    }
}
