//! SIGINT, SIGTERM and SIGHUP (Ctrl-C, `docker stop` or a CI runner, a closed terminal) all stop a
//! run the same way: packer is interrupted and paw waits for its cleanup. A second signal says what
//! is still being cleaned up, and paw keeps waiting. The first signal decides the exit code.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::output::BuildReporter;

/// The first signal received, 0 while there is none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signal that stopped the run, if one did.
pub fn received() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|signal| *signal != 0)
}

/// Cancels `cancel` on the first signal; on each later one, names the steps whose packer is still
/// cleaning up.
pub fn stop_on_signals(cancel: CancellationToken, reporter: Arc<BuildReporter>) -> std::io::Result<()> {
    let kinds =
        [("SIGINT", SignalKind::interrupt()), ("SIGTERM", SignalKind::terminate()), ("SIGHUP", SignalKind::hangup())];
    for (name, kind) in kinds {
        let mut stream = signal(kind)?;
        let (cancel, reporter) = (cancel.clone(), reporter.clone());
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                let first =
                    RECEIVED.compare_exchange(0, kind.as_raw_value(), Ordering::SeqCst, Ordering::SeqCst).is_ok();
                if first {
                    eprintln!(
                        "paw: {name}: stopping; packer cleans up what it started (a second signal says what is left)"
                    );
                    cancel.cancel();
                } else {
                    let steps = reporter.packer_steps().list();
                    let left = if steps.is_empty() { "nothing".to_string() } else { steps.join(", ") };
                    eprintln!("paw: {name}: still waiting for packer to clean up: {left}");
                }
            }
        });
    }
    Ok(())
}
