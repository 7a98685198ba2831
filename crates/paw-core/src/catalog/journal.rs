//! The build journal: while a step is being built, the catalog holds one entry for it, written
//! before packer starts and renewed by its holder. The entry is the step's lease (a second paw that
//! wants the step waits for it) and the dead run's will: should the holder die, the entry outlives
//! it, and any paw, on any machine, can tell from it what the run left in EC2.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::packer::PackerResources;

/// How long a lease lasts unless renewed: PAW_LEASE_TTL seconds, 60 by default. Its holder renews
/// it every third of that; a holder that stops renewing (a dead machine) loses it after this long.
pub const LEASE_TTL_ENV: &str = "PAW_LEASE_TTL";
const DEFAULT_LEASE_TTL: i64 = 60;

/// The name the journal gives this machine: PAW_HOST, else the host name. Two machines must not
/// share one (containers built from one image may: set PAW_HOST).
pub const HOST_ENV: &str = "PAW_HOST";

/// The variable that marks packer's processes with the run they belong to, so that paw can tell,
/// on the same machine, whether anything of a run is still alive.
pub const RUN_ID_ENV: &str = "PAW_RUN_ID";

pub fn lease_ttl() -> Result<i64> {
    match std::env::var(LEASE_TTL_ENV) {
        Err(_) => Ok(DEFAULT_LEASE_TTL),
        Ok(text) => text.trim().parse::<i64>().ok().filter(|ttl| *ttl >= 3).ok_or_else(|| {
            Error::new(ErrorKind::Usage, format!("{LEASE_TTL_ENV}={text} is not a number of seconds (3 or more)"))
                .help(format!("unset {LEASE_TTL_ENV} for the default of {DEFAULT_LEASE_TTL} seconds"))
        }),
    }
}

pub fn this_host() -> String {
    std::env::var(HOST_ENV).ok().filter(|host| !host.is_empty()).unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into())
    })
}

/// When a process started, in clock ticks since boot (`/proc/PID/stat`, field 22); None where
/// there is no /proc.
pub fn process_started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields after it are plain.
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(19)?.parse().ok()
}

pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One step being built, as the catalog's journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    pub workflow_id: String,
    pub step_id: String,
    /// Unique to this build of the step: every conditional write compares it.
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    /// When that process started (Linux: clock ticks since boot), so that another process that
    /// got its pid later is not taken for it.
    #[serde(default)]
    pub pid_started: Option<u64>,
    /// When the lease was taken (the catalog's `create_at` format).
    pub since: String,
    /// Unix seconds; renewed by the holder.
    pub expires_at: i64,
    pub ami_name: String,
    pub source_ami_id: String,
    pub source_ami_name: String,
    /// Set from here on: packer is about to start, or runs.
    #[serde(default)]
    pub build: Option<PackerRun>,
    #[serde(default)]
    pub resources: PackerResources,
}

/// The packer build of a journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackerRun {
    /// RFC 3339: AMIs of the step's name made since then may be this run's.
    pub started_at: String,
    pub fingerprint: Option<String>,
    pub log_path: PathBuf,
}

impl InFlight {
    /// Why the holder of this entry is gone, or None while it may still be at work: its lease
    /// expired, or it ran on this machine and nothing of it is alive any more. A run alive on this
    /// machine keeps its entry even past the expiry (its renewals may have failed, its packer not).
    pub fn stale_because(&self, now: i64, host: &str) -> Option<String> {
        if self.host == host {
            return (!self.alive_here()).then(|| format!("paw {} on {} is gone", self.pid, self.host));
        }
        (now >= self.expires_at).then(|| {
            format!("its lease from paw {} on {} expired {} s ago", self.pid, self.host, now - self.expires_at)
        })
    }

    /// Whether the holder's paw, or any process of its run (packer still cleaning up), is alive on
    /// this machine.
    fn alive_here(&self) -> bool {
        use nix::errno::Errno;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
        let exists = matches!(nix::sys::signal::kill(pid, None), Ok(()) | Err(Errno::EPERM));
        let same_process = match (self.pid_started, process_started(self.pid)) {
            (Some(recorded), Some(now)) => recorded == now,
            _ => true,
        };
        if exists && same_process {
            return true;
        }
        let marker = format!("{RUN_ID_ENV}={}", self.run_id);
        let Ok(processes) = std::fs::read_dir("/proc") else { return false };
        processes.filter_map(|entry| entry.ok()).any(|entry| {
            std::fs::read(entry.path().join("environ"))
                .is_ok_and(|environ| environ.split(|byte| *byte == 0).any(|variable| variable == marker.as_bytes()))
        })
    }

    /// For messages: "host/pid since T".
    pub fn holder(&self) -> String {
        format!("{}/{} since {}", self.host, self.pid, self.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, pid: u32, expires_at: i64) -> InFlight {
        InFlight {
            workflow_id: "wf".into(),
            step_id: "s1".into(),
            run_id: "run-1".into(),
            host: host.into(),
            pid,
            pid_started: process_started(pid),
            since: "2026-01-01T00:00:00.000000+0000".into(),
            expires_at,
            ami_name: "base/wf/s1".into(),
            source_ami_id: "ami-1".into(),
            source_ami_name: "base".into(),
            build: None,
            resources: PackerResources::default(),
        }
    }

    #[test]
    fn another_machines_entry_is_stale_once_its_lease_expired() {
        let entry = entry("elsewhere", 1, 100);
        assert_eq!(entry.stale_because(99, "here"), None);
        assert_eq!(entry.stale_because(103, "here").unwrap(), "its lease from paw 1 on elsewhere expired 3 s ago");
    }

    #[test]
    fn this_machines_entry_is_stale_once_its_process_is_gone() {
        let alive = entry("here", std::process::id(), 0);
        assert_eq!(alive.stale_because(1_000, "here"), None, "alive past its expiry: still held");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = entry("here", pid, i64::MAX);
        assert_eq!(dead.stale_because(0, "here").unwrap(), format!("paw {pid} on here is gone"));
        // A live process that took the pid later is not the holder.
        let mut reused = entry("here", std::process::id(), i64::MAX);
        reused.pid_started = reused.pid_started.map(|started| started + 1);
        assert!(reused.stale_because(0, "here").is_some());
    }
}
