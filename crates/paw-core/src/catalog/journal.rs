//! The build journal: while a step is being built, the catalog holds one entry for it, written
//! before packer starts and renewed by its holder. The entry is the step's lease (a second paw that
//! wants the step waits for it) and the dead run's will: should the holder die, the entry outlives
//! it, and any paw, on any machine, can tell from it what the run left in EC2.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::packer::PackerResources;
use crate::run_lock::RunLock;

/// How long a lease lasts unless renewed: PAW_LEASE_TTL seconds, 60 by default. Its holder renews
/// it every third of that; a holder that stops renewing (a dead machine) loses it after this long.
pub const LEASE_TTL_ENV: &str = "PAW_LEASE_TTL";
const DEFAULT_LEASE_TTL: i64 = 60;

/// The name the journal gives this machine: PAW_HOST, else the host name. Two machines must not
/// share one (containers built from one image may: set PAW_HOST).
pub const HOST_ENV: &str = "PAW_HOST";

pub fn lease_ttl() -> Result<i64> {
    match std::env::var(LEASE_TTL_ENV) {
        Err(_) => Ok(DEFAULT_LEASE_TTL),
        Ok(text) => text.trim().parse::<i64>().ok().filter(|ttl| *ttl >= 3).ok_or_else(|| {
            Error::new(ErrorKind::Usage, format!("{LEASE_TTL_ENV}={text} is not a number of seconds (3 or more)"))
                .help(format!("unset {LEASE_TTL_ENV} for the default of {DEFAULT_LEASE_TTL} seconds"))
        }),
    }
}

/// Who runs paw here: `$USER`, else the account's name, else its uid.
pub fn this_user() -> String {
    std::env::var("USER").ok().filter(|user| !user.is_empty()).unwrap_or_else(|| {
        let uid = nix::unistd::getuid();
        nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| format!("uid {uid}"), |user| user.name)
    })
}

/// Who acts: `user@host`, as histories keep it.
pub fn who() -> String {
    format!("{}@{}", this_user(), this_host())
}

pub fn this_host() -> String {
    std::env::var(HOST_ENV).ok().filter(|host| !host.is_empty()).unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into())
    })
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
    /// The run's lock on its host (`run_lock::RunLock`).
    #[serde(default)]
    pub lock_path: Option<PathBuf>,
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
    /// Why the holder of this entry is gone, or None while it may still be at work: it ran on
    /// this machine and its lock is no longer held (nothing of it is alive), or its lease expired.
    /// A run alive on this machine keeps its entry even past the expiry (its renewals may have
    /// failed, its packer not).
    pub fn stale_because(&self, now: i64, host: &str) -> Option<String> {
        if let Some(lock) = self.lock_here(host) {
            return (!RunLock::is_held(lock)).then(|| format!("paw {} on {} is gone", self.pid, self.host));
        }
        (now >= self.expires_at).then(|| {
            format!("its lease from paw {} on {} expired {} s ago", self.pid, self.host, now - self.expires_at)
        })
    }

    /// The run's lock, when the run is (or was) on this machine.
    pub fn lock_here(&self, host: &str) -> Option<&Path> {
        self.lock_path.as_deref().filter(|_| self.host == host)
    }

    /// For messages: "host/pid since T".
    pub fn holder(&self) -> String {
        format!("{}/{} since {}", self.host, self.pid, self.since)
    }
}

/// A dead run's lock file, for tests: there, and held by nothing, as a run that died leaves it.
#[cfg(test)]
pub(crate) fn dead_runs_lock(name: &str) -> PathBuf {
    std::fs::create_dir_all(RunLock::folder()).unwrap();
    let path = RunLock::folder().join(format!("{name}.lock"));
    std::fs::write(&path, b"").unwrap();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, lock: Option<&Path>, expires_at: i64) -> InFlight {
        InFlight {
            workflow_id: "wf".into(),
            step_id: "s1".into(),
            run_id: "run-1".into(),
            host: host.into(),
            pid: 1,
            lock_path: lock.map(Path::to_path_buf),
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
        let lock = RunLock::take("another-machines").unwrap();
        let entry = entry("elsewhere", Some(lock.path()), 100);
        assert_eq!(entry.stale_because(99, "here"), None);
        assert_eq!(entry.stale_because(103, "here").unwrap(), "its lease from paw 1 on elsewhere expired 3 s ago");
        lock.release();
    }

    #[tokio::test]
    async fn this_machines_entry_is_stale_once_nothing_holds_its_lock() {
        let lock = RunLock::take("this-machines").unwrap();
        let path = lock.path().to_path_buf();
        let held = entry("here", Some(&path), 0);
        assert_eq!(held.stale_because(1_000, "here"), None, "alive past its expiry: still held");

        // paw dies (its handle closes), but a process that inherited the lock (packer, cleaning
        // up) keeps the run alive until it ends.
        let mut packer = tokio::process::Command::new("sleep");
        packer.arg("30");
        RunLock::pass_to(lock.file(), &mut packer);
        let mut packer = packer.spawn().unwrap();
        drop(lock);
        assert_eq!(held.stale_because(1_000, "here"), None, "packer still holds it");
        packer.kill().await.unwrap();
        assert_eq!(held.stale_because(0, "here").unwrap(), "paw 1 on here is gone");

        // A lock file nobody ever held after a run died, or no file at all, is gone too.
        let dead = dead_runs_lock("this-machines-dead");
        assert_eq!(entry("here", Some(&dead), 0).stale_because(0, "here").unwrap(), "paw 1 on here is gone");
        for path in [dead, path] {
            RunLock::remove(&path);
        }
        assert_eq!(held.stale_because(0, "here").unwrap(), "paw 1 on here is gone");
    }

    #[test]
    fn taking_a_lock_sweeps_the_files_of_dead_runs_only() {
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let dead = dead_runs_lock("swept-dead");
        std::fs::File::options().write(true).open(&dead).unwrap().set_modified(an_hour_ago).unwrap();
        let live = RunLock::take("swept-live").unwrap();
        live.file().set_modified(an_hour_ago).unwrap();
        RunLock::take("swept-new").unwrap().release();
        assert!(!dead.exists(), "an old lock nobody holds goes");
        assert!(live.path().exists(), "a held lock stays, however old");
        live.release();
    }
}
