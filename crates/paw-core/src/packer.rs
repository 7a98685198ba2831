//! The `packer` binary: finding it, `init`, `validate`, and reading `-machine-readable` output.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, ErrorKind, Result};

/// The environment variable that names the packer binary; PATH is searched when it is not set.
pub const PACKER_ENV: &str = "PAW_PACKER";

#[derive(Debug, Clone)]
pub struct Packer {
    pub path: PathBuf,
    /// (major, minor, patch), from `packer version`.
    pub version: (u32, u32, u32),
}

impl Packer {
    /// The packer named by PAW_PACKER, else the first on PATH; `None` when there is none.
    pub fn locate() -> Result<Option<Packer>> {
        let path = match std::env::var_os(PACKER_ENV).filter(|value| !value.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => match find_on_path("packer") {
                Some(path) => path,
                None => return Ok(None),
            },
        };
        let output = Command::new(&path).arg("version").output().map_err(|err| {
            Error::new(ErrorKind::Packer, format!("cannot run packer at {}: {err}", path.display()))
                .help(format!("set {PACKER_ENV} to a packer binary, or install packer"))
        })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = parse_version(&text).ok_or_else(|| {
            Error::new(ErrorKind::Packer, format!("cannot read the version of {}", path.display()))
                .details(text.to_string())
        })?;
        Ok(Some(Packer { path, version }))
    }

    pub fn version_string(&self) -> String {
        let (major, minor, patch) = self.version;
        format!("{major}.{minor}.{patch}")
    }

    /// `packer init` exists from 1.7 on, as do `required_plugins` blocks.
    pub fn supports_init(&self) -> bool {
        self.version >= (1, 7, 0)
    }

    /// `packer validate` in the step folder with its var files; packer's own message on failure.
    pub fn validate(&self, step_dir: &Path, var_files: &[PathBuf], requires_plugins: bool) -> Result<()> {
        if requires_plugins {
            if !self.supports_init() {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "the template has a `packer {{ required_plugins {{ ... }} }}` block, which packer {} does not know",
                        self.version_string()
                    ),
                )
                .in_file(step_dir)
                .help("use packer 1.7 or newer, or drop the required_plugins block for older packers"));
            }
            self.run_checked(step_dir, &["init".into(), ".".into()], "packer init")?;
        }
        let mut args: Vec<OsString> = vec!["validate".into()];
        args.extend(var_file_args(var_files));
        args.push(".".into());
        self.run_checked(step_dir, &args, "packer validate")
    }

    fn run_checked(&self, dir: &Path, args: &[OsString], what: &str) -> Result<()> {
        let output = Command::new(&self.path)
            .args(args)
            .current_dir(dir)
            .env("CHECKPOINT_DISABLE", "1")
            .output()
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

fn unescape(field: &str) -> String {
    field.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r")
}

#[cfg(test)]
mod tests {
    use super::*;

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
