//! The `packer` binary: finding it, `init`, `validate`, and reading `-machine-readable` output.
//! (`paw packer install`, which downloads one, is the binary's: paw-core makes no HTTP calls.)

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};

/// The environment variable that names the packer binary; PATH is searched when it is not set.
pub const PACKER_ENV: &str = "PAW_PACKER";

/// What the build needs of packer; the engine's unit tests use a fake.
#[async_trait]
pub trait Packer: Send + Sync {
    /// The exact command `build` runs in the step folder, for `--dry-run`.
    fn build_command(&self, var_files: &[PathBuf], vars: &[(String, String)], debug: bool) -> String;

    /// Its version, as `packer version` says it: `1.6.6`.
    async fn version_text(&self) -> Result<String>;

    /// `packer validate` in the step folder with its var files (`packer init` first when the
    /// template requires plugins); packer's own message on failure.
    async fn validate(&self, step_dir: &Path, var_files: &[PathBuf], requires_plugins: bool) -> Result<()>;

    /// Runs `packer build`, hands every line of packer's text to `on_line` as it comes, and keeps
    /// the raw output in the request's log. On `cancel`, packer is interrupted and waited for.
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        on_line: &(dyn for<'l> Fn(&'l str) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<BuildOutput>;
}

/// The real packer binary.
#[derive(Debug)]
pub struct PackerBinary {
    pub path: PathBuf,
    /// Where paw found it: "PAW_PACKER", "PATH", or "paw's own install (`paw packer install`)".
    pub found_by: &'static str,
    /// (major, minor, patch), from `packer version`, asked once and only when needed: a build
    /// needs it only for `packer init`.
    version: tokio::sync::OnceCell<(u32, u32, u32)>,
}

/// paw's own place for packer (`paw packer install`): `$XDG_DATA_HOME/paw/bin`, else
/// `~/.local/share/paw/bin`.
pub fn own_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))?;
    Some(data.join("paw/bin"))
}

impl PackerBinary {
    /// The packer named by PAW_PACKER, else the first on PATH, else the one `paw packer install`
    /// put in its own folder; `None` when there is none.
    pub fn locate() -> Option<PackerBinary> {
        if let Some(path) = std::env::var_os(PACKER_ENV).filter(|value| !value.is_empty()) {
            return Some(PackerBinary::at(PathBuf::from(path), PACKER_ENV));
        }
        if let Some(path) = find_on_path("packer") {
            return Some(PackerBinary::at(path, "PATH"));
        }
        let own = own_dir()?.join("packer");
        own.is_file().then(|| PackerBinary::at(own, "paw's own install (`paw packer install`)"))
    }

    pub fn at(path: PathBuf, found_by: &'static str) -> PackerBinary {
        PackerBinary { path, found_by, version: tokio::sync::OnceCell::new() }
    }

    /// (major, minor, patch) from `packer version`.
    pub async fn version(&self) -> Result<(u32, u32, u32)> {
        let version = self
            .version
            .get_or_try_init(|| async {
                let output = Command::new(&self.path).arg("version").output().await.map_err(|err| {
                    Error::new(ErrorKind::Packer, format!("cannot run packer at {}: {err}", self.path.display()))
                        .help(format!("set {PACKER_ENV} to a packer binary, or install packer"))
                })?;
                let text = String::from_utf8_lossy(&output.stdout);
                parse_version(&text).ok_or_else(|| {
                    Error::new(ErrorKind::Packer, format!("cannot read the version of {}", self.path.display()))
                        .details(text.to_string())
                })
            })
            .await?;
        Ok(*version)
    }

    /// For messages: `packer 1.6.6`.
    pub async fn describe(&self) -> Result<String> {
        Ok(format!("packer {}", self.version_text().await?))
    }

    async fn run_checked(&self, dir: &Path, args: &[OsString], what: &str) -> Result<()> {
        let output = Command::new(&self.path)
            .args(args)
            .current_dir(dir)
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .await
            .map_err(|err| Error::new(ErrorKind::Packer, format!("cannot run {}: {err}", self.path.display())))?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(Error::new(ErrorKind::Validation, format!("{what} failed"))
            .in_file(dir)
            .details(text)
            .help("packer's message above names the file and line to fix"))
    }

    fn cannot_run(&self, err: std::io::Error) -> Error {
        Error::new(ErrorKind::Packer, format!("cannot run {}: {err}", self.path.display()))
            .help(format!("set {PACKER_ENV} to a packer binary, or install packer"))
    }

    /// `packer build`, in its own process group (a Ctrl-C reaches packer once, through paw, which
    /// then waits), writing to the log, and holding the run's lock.
    fn spawn_build(&self, request: &BuildRequest<'_>, output: std::fs::File) -> Result<tokio::process::Child> {
        let errors = output.try_clone().map_err(|err| Error::io(request.log_path, "create the log", err))?;
        let mut command = Command::new(&self.path);
        command
            .args(build_args(request.var_files, request.vars, request.debug))
            .current_dir(request.step_dir)
            .env("CHECKPOINT_DISABLE", "1")
            .envs(request.env.iter().map(|(key, value)| (key, value)))
            .stdin(if request.debug { Stdio::inherit() } else { Stdio::null() })
            .stdout(output)
            .stderr(errors)
            .process_group(0);
        if let Some(lock) = request.run_lock {
            crate::run_lock::RunLock::pass_to(lock, &mut command);
        }
        command.spawn().map_err(|err| self.cannot_run(err))
    }
}

#[async_trait]
impl Packer for PackerBinary {
    async fn version_text(&self) -> Result<String> {
        let (major, minor, patch) = self.version().await?;
        Ok(format!("{major}.{minor}.{patch}"))
    }

    async fn validate(&self, step_dir: &Path, var_files: &[PathBuf], requires_plugins: bool) -> Result<()> {
        if requires_plugins {
            // `packer init` exists from 1.7 on, as do `required_plugins` blocks.
            if self.version().await? < (1, 7, 0) {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "the template has a `packer {{ required_plugins {{ ... }} }}` block, which {} does not know",
                        self.describe().await?
                    ),
                )
                .in_file(step_dir)
                .help("use packer 1.7 or newer, or drop the required_plugins block for older packers"));
            }
            self.run_checked(step_dir, &["init".into(), ".".into()], "packer init").await?;
        }
        let mut args: Vec<OsString> = vec!["validate".into()];
        args.extend(var_file_args(var_files));
        args.push(".".into());
        self.run_checked(step_dir, &args, "packer validate").await
    }

    fn build_command(&self, var_files: &[PathBuf], vars: &[(String, String)], debug: bool) -> String {
        std::iter::once(self.path.as_os_str().to_os_string())
            .chain(build_args(var_files, vars, debug))
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// packer writes straight to the log, which paw follows, so packer's output does not depend
    /// on paw being alive; should paw die, a small watcher (`WATCHER`) interrupts packer so that it
    /// still cleans up. On `cancel`, packer's process group gets SIGINT, as from a terminal, and
    /// paw waits for packer to clean up (instance, key pair, security group).
    async fn build(
        &self,
        request: &BuildRequest<'_>,
        on_line: &(dyn for<'l> Fn(&'l str) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<BuildOutput> {
        let (output, log) = open_log(request.log_path)?;
        // Everything that can fail is done before packer starts: from then on, paw waits for it.
        let mut packer = self.spawn_build(request, output)?;
        let group = packer.id().map(|id| nix::unistd::Pid::from_raw(id as i32));
        // Dropped, and so stopped, with this call: it matters only while packer runs.
        let _watcher = group.and_then(|group| watch(group, on_line));
        let followed = follow(&mut packer, log, group, on_line, cancel).await.map_err(|err| match err {
            FollowError::Unreadable(err) => Error::io(request.log_path, "read the log", err),
            FollowError::Unwaitable(err) => self.cannot_run(err),
        })?;
        let failure = followed.failure(request.log_path);
        let transient =
            failure.as_ref().filter(|_| !followed.interrupted).and_then(|_| transient_cause(&followed.errors));
        Ok(BuildOutput { failure, amis: followed.amis, transient })
    }
}

/// The build's log, created empty, and a reader of it from the start.
fn open_log(log_path: &Path) -> Result<(std::fs::File, BufReader<tokio::fs::File>)> {
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent).map_err(|err| Error::io(parent, "create the log folder", err))?;
    }
    let output = std::fs::File::create(log_path).map_err(|err| Error::io(log_path, "create the log", err))?;
    let reader = std::fs::File::open(log_path).map_err(|err| Error::io(log_path, "read the log", err))?;
    Ok((output, BufReader::new(tokio::fs::File::from_std(reader))))
}

/// A running `WATCHER`, and paw's end of its pipe. Dropped in this order: the watcher is killed
/// first, so that the pipe's closing does not read as paw's death.
type Watcher = (tokio::process::Child, std::io::PipeWriter);

/// Starts the `WATCHER` of paw for packer's process group. packer runs now, so a watcher that
/// cannot start is a warning, not an error that would leave packer.
fn watch(group: nix::unistd::Pid, on_line: &(dyn for<'l> Fn(&'l str) + Send + Sync)) -> Option<Watcher> {
    let cannot = |err: &std::io::Error| {
        on_line(&format!("paw: cannot watch packer ({err}); should paw die, stop packer by hand"));
    };
    // Both ends close on exec: the watcher gets the reading end as its stdin, and no other
    // process (packer included) gets the writing end, which paw alone holds.
    let (reader, writer) = std::io::pipe().inspect_err(cannot).ok()?;
    let watcher = Command::new("/bin/sh")
        .args(["-c", WATCHER, "paw-packer-watcher"])
        .arg(group.to_string())
        .stdin(reader)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    watcher.map(|watcher| (watcher, writer)).inspect_err(cannot).ok()
}

/// What following a build's log to its end found.
struct Followed {
    status: std::process::ExitStatus,
    interrupted: bool,
    amis: Vec<(String, String)>,
    /// packer's error lines.
    errors: Vec<String>,
}

/// Why following the log stopped short.
enum FollowError {
    Unreadable(std::io::Error),
    Unwaitable(std::io::Error),
}

impl Followed {
    /// Why the build failed, if it did.
    fn failure(&self, log_path: &Path) -> Option<Error> {
        let help = format!("packer's full output is in {}", log_path.display());
        if self.interrupted {
            return Some(Error::new(ErrorKind::Interrupted, "interrupted; packer cleaned up and stopped").help(help));
        }
        if self.status.success() {
            return None;
        }
        let details = self.errors.iter().rev().take(20).rev().cloned().collect::<Vec<_>>().join("\n");
        let code = self.status.code().map_or_else(|| self.status.to_string(), |code| format!("exit status: {code}"));
        Some(Error::new(ErrorKind::Packer, format!("packer build failed ({code})")).details(details).help(help))
    }
}

/// Follows the log to packer's exit and then to the log's end, so that every line packer wrote is
/// read: each handed to `on_line`, the AMIs of its artifact and its errors kept. On `cancel`,
/// packer's process group is interrupted, once.
async fn follow(
    packer: &mut tokio::process::Child,
    mut log: BufReader<tokio::fs::File>,
    group: Option<nix::unistd::Pid>,
    on_line: &(dyn for<'l> Fn(&'l str) + Send + Sync),
    cancel: &CancellationToken,
) -> std::result::Result<Followed, FollowError> {
    let (mut line, mut exited, mut interrupted) = (String::new(), None, false);
    let (mut amis, mut errors) = (Vec::new(), Vec::new());
    loop {
        let read = log.read_line(&mut line).await.map_err(FollowError::Unreadable)?;
        if read == 0 && exited.is_none() {
            tokio::select! {
                status = packer.wait() => exited = Some(status.map_err(FollowError::Unwaitable)?),
                () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                () = cancel.cancelled(), if !interrupted => {
                    interrupted = true;
                    // The whole group: packer 1.6 runs its build in a child process (panicwrap).
                    if let Some(group) = group {
                        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT);
                    }
                    on_line("interrupted: waiting for packer to clean up");
                }
            }
            continue;
        }
        if read > 0 && !line.ends_with('\n') {
            continue;
        }
        if !line.is_empty() {
            let text = line.trim_end_matches(['\n', '\r']);
            match MachineLine::parse(text) {
                Some(parsed) => {
                    amis.extend(parsed.artifact_amis());
                    if let Some((kind, text)) = parsed.ui_text() {
                        for text_line in text.lines().filter(|text_line| !text_line.trim().is_empty()) {
                            on_line(text_line);
                            if kind == "error" {
                                errors.push(text_line.to_string());
                            }
                        }
                    }
                }
                None => on_line(text),
            }
            line.clear();
        }
        if read == 0 {
            let status = exited.expect("the loop ends once packer has exited");
            return Ok(Followed { status, interrupted, amis, errors });
        }
    }
}

/// Watches paw for packer's process group (the argument): its stdin is a pipe whose only writer
/// is paw, so reading it ends when paw is gone, however it died. Then it interrupts packer, once,
/// so that packer still cleans up (packer writes to the log, not to paw, so it does not die with
/// paw). While packer runs normally, paw kills the watcher when packer is done. No /proc is read:
/// this works on macOS as on Linux.
const WATCHER: &str = r#"
packer=$1
while read -r _; do :; done
kill -INT -"$packer" 2>/dev/null
"#;

/// What one `packer build` needs besides the packer itself.
pub struct BuildRequest<'a> {
    pub step_dir: &'a Path,
    pub var_files: &'a [PathBuf],
    /// `-var NAME=VALUE`s, after the var files (the attempt's instance type).
    pub vars: &'a [(String, String)],
    /// `-debug`: packer pauses for Enter at every step.
    pub debug: bool,
    /// Variables for packer's environment (region, profile, credentials); never printed.
    pub env: &'a [(String, String)],
    pub log_path: &'a Path,
    /// The run's lock (run_lock::RunLock), which packer's processes inherit and hold while they
    /// run: it tells another paw on this machine that the run is alive, packer cleaning up after
    /// paw died included.
    pub run_lock: Option<&'a std::fs::File>,
}

/// What a `packer build` left behind: the AMIs of its artifact report as `(region, ami)`, and why it
/// failed, if it did. A failed or interrupted build may still have made AMIs.
#[derive(Debug)]
pub struct BuildOutput {
    pub amis: Vec<(String, String)>,
    pub failure: Option<Error>,
    /// What made the build fail, when it is passing (`transient_cause`): worth another attempt.
    pub transient: Option<&'static str>,
}

/// What, in packer's error lines, says the build failed for a reason that passes: AWS throttling
/// or failing on its side, no capacity for the instance type, a source AMI still pending, SSH or
/// WinRM not up in time. None for anything else (a provisioner that failed, a template error):
/// another attempt would fail the same way.
pub fn transient_cause(errors: &[String]) -> Option<&'static str> {
    const CAUSES: &[(&str, &[&str])] = &[
        ("AWS throttling", &["requestlimitexceeded", "throttling", "rate exceeded"]),
        (
            "no capacity for the instance type",
            &[
                "insufficientinstancecapacity",
                "insufficientcapacity",
                "insufficientspotcapacity",
                "capacity-not-available",
            ],
        ),
        ("the source AMI is still pending", &["is pending", "pending state", "not yet available"]),
        ("SSH or WinRM did not come up in time", &["timeout waiting for ssh", "timeout waiting for winrm"]),
        ("an error on AWS's side", &["internalerror", "serviceunavailable", "internal server error"]),
    ];
    let text = errors.join("\n").to_ascii_lowercase();
    CAUSES.iter().find(|(_, signs)| signs.iter().any(|sign| text.contains(sign))).map(|(cause, _)| *cause)
}

/// The arguments of `packer build` for a step, run in its folder.
/// `vars` come after the var files: packer lets the later win.
fn build_args(var_files: &[PathBuf], vars: &[(String, String)], debug: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["build".into(), "-machine-readable".into()];
    if debug {
        args.push("-debug".into());
    }
    args.extend(var_file_args(var_files));
    args.extend(vars.iter().map(|(name, value)| OsString::from(format!("-var={name}={value}"))));
    args.push(".".into());
    args
}

/// `-var-file=NAME` for each file, by file name, since packer runs in the step folder.
pub fn var_file_args(var_files: &[PathBuf]) -> impl Iterator<Item = OsString> + '_ {
    var_files.iter().map(|file| {
        let mut arg = OsString::from("-var-file=");
        arg.push(file.file_name().unwrap_or(file.as_os_str()));
        arg
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let mut numbers = text[start..].split(|c: char| !c.is_ascii_digit()).take(3).map(|part| part.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??, numbers.next().flatten().unwrap_or(0)))
}

/// One line of `packer -machine-readable` output: `timestamp,target,type,data...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineLine {
    pub target: String,
    pub kind: String,
    pub data: Vec<String>,
}

impl MachineLine {
    pub fn parse(line: &str) -> Option<MachineLine> {
        let mut fields = line.trim_end_matches(['\r', '\n']).split(',');
        let timestamp = fields.next()?;
        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let target = fields.next()?.to_string();
        let kind = fields.next()?.to_string();
        let data = fields.map(unescape).collect();
        Some(MachineLine { target, kind, data })
    }

    /// The human text of a `ui` line (`say`, `message`, `error`), if this is one.
    pub fn ui_text(&self) -> Option<(&str, &str)> {
        if self.kind != "ui" {
            return None;
        }
        Some((self.data.first()?.as_str(), self.data.get(1).map_or("", String::as_str)))
    }

    /// `(region, ami_id)` pairs from an `artifact,N,id,region:ami[,region:ami]` line.
    pub fn artifact_amis(&self) -> Vec<(String, String)> {
        if self.kind != "artifact" || self.data.get(1).map(String::as_str) != Some("id") {
            return Vec::new();
        }
        self.data
            .get(2)
            .map(|ids| {
                ids.split(',')
                    .filter_map(|pair| pair.split_once(':'))
                    .filter(|(_, ami)| ami.starts_with("ami-"))
                    .map(|(region, ami)| (region.to_string(), ami.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The temporary resources a `packer build` made in EC2 (amazon-ebs names them in its output):
/// what must go should packer die before its own cleanup.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackerResources {
    pub instances: Vec<String>,
    pub key_pairs: Vec<String>,
    /// By name (packer prints the name, not the id).
    pub security_groups: Vec<String>,
    /// The regions packer copies the AMI to (`ami_regions`).
    #[serde(default)]
    pub copy_regions: Vec<String>,
}

impl PackerResources {
    /// Notes the resource a line of packer's text names, if any; true when it is new.
    pub fn note(&mut self, line: &str) -> bool {
        let after = |marker: &str| {
            let (_, rest) = line.split_once(marker)?;
            let word = rest.split_whitespace().next()?;
            Some(word.trim_end_matches(['.', ',']).to_string())
        };
        let (list, found) = if let Some(name) = after("Creating temporary keypair:") {
            (&mut self.key_pairs, name)
        } else if let Some(name) = after("Creating temporary security group for this instance:") {
            (&mut self.security_groups, name)
        } else if let Some(id) = after("Instance ID:").filter(|id| id.starts_with("i-")) {
            (&mut self.instances, id)
        } else if let Some(region) = after("Copying to:") {
            (&mut self.copy_regions, region)
        } else {
            return false;
        };
        if list.contains(&found) {
            return false;
        }
        list.push(found);
        true
    }
}

fn unescape(field: &str) -> String {
    field.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watcher leaves packer alone while paw lives, and interrupts packer's whole process
    /// group once paw's end of the pipe closes, as when paw dies; it reads no /proc.
    #[tokio::test]
    async fn the_watcher_interrupts_packer_once_paw_is_gone() {
        let mut packer = Command::new("sleep").arg("30").process_group(0).kill_on_drop(true).spawn().unwrap();
        let group = nix::unistd::Pid::from_raw(packer.id().unwrap() as i32);
        let (mut watcher, paw) = watch(group, &|line| panic!("{line}")).unwrap();
        let still = tokio::time::timeout(std::time::Duration::from_millis(500), packer.wait()).await;
        assert!(still.is_err(), "packer runs on while paw lives");
        drop(paw);
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), packer.wait()).await.unwrap().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(nix::libc::SIGINT));
        assert!(watcher.wait().await.unwrap().success());
    }

    #[test]
    fn passing_causes_of_a_failed_build_are_told_from_lasting_ones() {
        let cause = |line: &str| transient_cause(&[line.to_string()]);
        let capacity = "Error launching source instance: InsufficientInstanceCapacity: We currently do not have \
                        sufficient c6i.large capacity in the Availability Zone you requested";
        assert_eq!(cause(capacity), Some("no capacity for the instance type"));
        assert_eq!(cause("RequestLimitExceeded: Request limit exceeded."), Some("AWS throttling"));
        assert_eq!(cause("Timeout waiting for SSH."), Some("SSH or WinRM did not come up in time"));
        let pending = "Error launching source instance: IncorrectInstanceState: Image ami-1 is pending";
        assert_eq!(cause(pending), Some("the source AMI is still pending"));
        assert_eq!(cause("Script exited with non-zero exit status: 3"), None);
        assert_eq!(cause("Error: Unsupported argument"), None);
    }

    /// A stand-in packer: a shell script whose `build` runs `body`.
    fn stand_in(dir: &Path, body: &str) -> PackerBinary {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("packer");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        PackerBinary::at(path, "a test")
    }

    async fn build_with(body: &str) -> (BuildOutput, String) {
        let dir = tempfile::tempdir().unwrap();
        let packer = stand_in(dir.path(), body);
        let log_path = dir.path().join("logs/step.log");
        let request = BuildRequest {
            step_dir: dir.path(),
            var_files: &[],
            vars: &[],
            debug: false,
            env: &[],
            log_path: &log_path,
            run_lock: None,
        };
        let output = packer.build(&request, &|_| {}, &CancellationToken::new()).await.unwrap();
        (output, std::fs::read_to_string(&log_path).unwrap())
    }

    const ARTIFACT: &str = "1,amazon-ebs.step,artifact,0,id,us-east-1:ami-0123";

    /// packer may close stderr before it writes the artifact report: stdout is still read to its end.
    #[tokio::test]
    async fn stderr_closing_first_loses_no_output() {
        let body = format!("echo 'to stderr' >&2\nexec 2>&-\nsleep 0.3\necho 1,,ui,say,done\necho {ARTIFACT}");
        let (output, log) = build_with(&body).await;
        assert_eq!(output.amis, [("us-east-1".to_string(), "ami-0123".to_string())]);
        assert!(output.failure.is_none());
        assert_eq!(log, format!("to stderr\n1,,ui,say,done\n{ARTIFACT}\n"));
    }

    #[tokio::test]
    async fn stdout_closing_first_loses_no_output() {
        let body = format!("echo {ARTIFACT}\nexec 1>&-\nsleep 0.3\necho 'late' >&2\nexit 3");
        let (output, log) = build_with(&body).await;
        assert_eq!(output.amis.len(), 1);
        assert!(output.failure.unwrap().to_string().contains("packer build failed"));
        assert_eq!(log, format!("{ARTIFACT}\nlate\n"));
    }

    #[test]
    fn resources_packer_names_in_its_output() {
        let mut resources = PackerResources::default();
        let lines = [
            "==> s.amazon-ebs.s: Creating temporary keypair: packer_6b0a91e1-ab3e",
            "==> s.amazon-ebs.s: Creating temporary security group for this instance: packer_6b0a91e1-a12e",
            "    s.amazon-ebs.s: Instance ID: i-4b5f2cbeaf0124402",
            "==> s.amazon-ebs.s: Waiting for instance (i-4b5f2cbeaf0124402) to become ready...",
            "    s.amazon-ebs.s: Instance ID: i-4b5f2cbeaf0124402",
            "    s.amazon-ebs.s: Copying to: us-west-2",
        ];
        let new: Vec<bool> = lines.iter().map(|line| resources.note(line)).collect();
        assert_eq!(new, [true, true, true, false, false, true]);
        assert_eq!(resources.copy_regions, ["us-west-2"]);
        assert_eq!(resources.key_pairs, ["packer_6b0a91e1-ab3e"]);
        assert_eq!(resources.security_groups, ["packer_6b0a91e1-a12e"]);
        assert_eq!(resources.instances, ["i-4b5f2cbeaf0124402"]);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("Packer v1.6.6\n"), Some((1, 6, 6)));
        assert_eq!(parse_version("Packer v1.11.2\n\nYour version of Packer is out of date!"), Some((1, 11, 2)));
        assert_eq!(parse_version("nothing"), None);
    }

    #[test]
    fn machine_readable_lines() {
        let line = MachineLine::parse("1795825823,,ui,say,No volumes to clean up%!(PACKER_COMMA) skipping").unwrap();
        assert_eq!(line.ui_text(), Some(("say", "No volumes to clean up, skipping")));
        let line =
            MachineLine::parse("1795825823,amazon-ebs.step,artifact,0,id,us-east-1:ami-70125797d49c74e85").unwrap();
        assert_eq!(line.artifact_amis(), [("us-east-1".to_string(), "ami-70125797d49c74e85".to_string())]);
        let line =
            MachineLine::parse("1,amazon-ebs.x,artifact,0,id,eu-west-1:ami-2%!(PACKER_COMMA)us-east-1:ami-1").unwrap();
        assert_eq!(line.artifact_amis().len(), 2);
        assert_eq!(MachineLine::parse("==> plain text"), None);
        let line = MachineLine::parse("1,,ui,say,a\\nb").unwrap();
        assert_eq!(line.ui_text(), Some(("say", "a\nb")));
    }
}
