//! Programs paw starts that start programs of their own (image tests, upstream probes): each in a
//! process group of its own, stopped as a whole.

use std::time::Duration;

/// Stops a child's whole process group: TERM, then KILL when it has not exited within 5 s.
pub async fn stop_group(child: &mut tokio::process::Child) {
    use nix::sys::signal::{Signal, killpg};
    let Some(group) = child.id().map(|id| nix::unistd::Pid::from_raw(id as i32)) else { return };
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}
