//! A run's lock on this machine, which paw and packer's processes hold while the run lives. The
//! journal (`catalog`) records where it is; packer (`packer`) passes it on; so it sits below both.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A run's lock on this machine: a file locked (flock) by paw for as long as the run holds the
/// step's lease, and by packer's processes, which inherit it, for as long as they run (packer
/// cleaning up after paw died included). Whether anything of a run is alive here is whether its
/// lock is held: no process table is read, no pid can be mistaken for another, and it works where
/// there is no /proc (macOS).
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Creates and locks the run's lock file, in this user's `paw-runs-UID` under the temporary folder.
    pub fn take(run_id: &str) -> Result<RunLock> {
        let dir = RunLock::folder();
        std::fs::create_dir_all(&dir).map_err(|err| Error::io(&dir, "create the folder of run locks", err))?;
        sweep(&dir);
        let path = dir.join(format!("{run_id}.lock"));
        let file = File::create(&path).map_err(|err| Error::io(&path, "create the run's lock", err))?;
        file.try_lock().map_err(|err| Error::io(&path, "lock the run's lock", std::io::Error::other(err)))?;
        Ok(RunLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The locked file, for packer's processes to inherit.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Makes `lock` (a handle on a run's lock) inherited by the process `command` starts, and by
    /// no other process paw starts meanwhile: close-on-exec is cleared in that child alone.
    pub fn pass_to(lock: &File, command: &mut tokio::process::Command) {
        let fd = std::os::fd::AsRawFd::as_raw_fd(lock);
        // SAFETY: between fork and exec the child only calls fcntl, which is async-signal-safe;
        // `lock` is open in paw until the child has started.
        unsafe {
            command.pre_exec(move || {
                let flags = nix::fcntl::FdFlag::empty();
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags)).map(drop).map_err(std::io::Error::from)
            });
        }
    }

    /// The folder of this user's run locks.
    pub fn folder() -> PathBuf {
        std::env::temp_dir().join(format!("paw-runs-{}", nix::unistd::getuid()))
    }

    /// Whether the lock at `path` is held by a process of its run; false when the file is gone.
    pub fn is_held(path: &Path) -> bool {
        let Ok(file) = File::open(path) else { return false };
        matches!(file.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Ends the lock when the run lets the step go. (A lock dropped without this, as by a run
    /// that dies, leaves its file: the run that settles what it left removes it.)
    pub fn release(self) {
        RunLock::remove(&self.path);
    }

    /// Removes a lock file.
    pub fn remove(path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes the lock files of dead runs that nobody settled here (a run on this machine settled
/// from another one). Only files a minute old: a lock file is locked the moment it is created.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let a_minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for entry in entries.filter_map(|entry| entry.ok()) {
        let old = entry.metadata().and_then(|meta| meta.modified()).is_ok_and(|modified| modified < a_minute_ago);
        if old && !RunLock::is_held(&entry.path()) {
            RunLock::remove(&entry.path());
        }
    }
}
