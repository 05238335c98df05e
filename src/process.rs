//! Child processes run in their own process group (hooks, dump tools), and
//! stopping the whole group when a time limit or a cancel hits, so nothing
//! the child started lingers.

use rustix::process::{Pid, Signal, kill_process_group};
use std::time::Duration;

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
