//! A small builder for running the real `paw` binary against a workflow in a temporary folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder of the repository's examples.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The packer the tests run: PAW_PACKER, else `packer` on PATH. Missing → the test fails with the
/// command that installs it; it never passes by skipping.
pub fn packer() -> PathBuf {
    if let Some(path) = std::env::var_os("PAW_PACKER") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("packer")).find(|p| p.is_file()));
    found.expect("packer is not installed: run scripts/setup (it runs `apt-get install -y packer`)")
}

/// Debian's chromium, for the report's tests. Missing → the test fails with the command that
/// installs it.
pub fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("chromium")).find(|p| p.is_file()));
    found.expect("chromium is not installed: run scripts/setup (it runs `apt-get install -y chromium`)")
}

pub struct Paw {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, 0, "paw failed:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", self.stdout))
    }
}

/// What in a text paw shows a user is not words: Rust's debug form of a value (`Some("x")`,
/// `Ok(..)`, a path's `PathBuf`) or a plural after one ("1 steps"). None where there is none.
pub fn debug_form(text: &str) -> Option<String> {
    if let Some(slip) = ["Some(", "Ok(", "Err(", "PathBuf", "\\\""].iter().find(|slip| text.contains(*slip)) {
        return Some(format!("{slip:?} in {text:?}"));
    }
    let words: Vec<&str> =
        text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | ':')).collect();
    words.windows(2).find_map(|pair| {
        let noun = pair[1];
        let plural = noun.len() > 2
            && noun.ends_with('s')
            && !noun.ends_with("ss")
            && !noun.ends_with("us")
            && noun.chars().all(|c| c.is_ascii_lowercase());
        (pair[0] == "1" && plural).then(|| format!("\"1 {noun}\" in {text:?}"))
    })
}

/// A `--dry-run --json` plan's actions, each as (action, place).
pub fn planned_actions(plan: &serde_json::Value) -> Vec<(String, String)> {
    let actions = plan["actions"].as_array().unwrap_or_else(|| panic!("not a plan: {plan:#}"));
    let field = |action: &serde_json::Value, key: &str| action[key].as_str().unwrap_or_default().to_string();
    actions.iter().map(|action| (field(action, "action"), field(action, "place"))).collect()
}

impl Paw {
    /// An empty temporary folder to run paw in.
    pub fn new() -> Paw {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let cwd = dir.path().to_path_buf();
        Paw { dir, env: Vec::new(), cwd }
    }

    /// A copy of `examples/<name>` at `wf/` in a temporary folder.
    pub fn example(name: &str) -> Paw {
        let paw = Paw::new();
        copy_tree(&examples_dir().join(name), &paw.path("wf"));
        paw
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) -> &Self {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap_or_else(|err| panic!("{relative}: {err}"))
    }

    /// Replaces `from` with `to` in a file, and checks that `from` was there.
    pub fn edit(&self, relative: &str, from: &str, to: &str) -> &Self {
        let text = self.read(relative);
        assert!(text.contains(from), "{relative} has no {from:?}");
        self.write(relative, &text.replacen(from, to, 1))
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The last value given to `env` for `key`.
    pub fn env_value(&self, key: &str) -> Option<String> {
        self.env.iter().rev().find(|(name, _)| name == key).map(|(_, value)| value.clone())
    }

    pub fn cwd(mut self, relative: &str) -> Self {
        self.cwd = self.path(relative);
        self
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(&[], args)
    }

    /// `run`, with more environment for this run only.
    pub fn run_with(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let output = self.command(args).envs(env.iter().copied()).output().expect("paw runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The paw command, ready to run, for tests that drive the process themselves.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin!("paw"));
        command.args(args).current_dir(&self.cwd);
        // No AWS configuration of the machine leaks in, and nothing ever asks EC2's metadata service.
        // Nor does the CI system the tests may run in.
        for key in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "PAW_CATALOG",
            "PAW_PACKER",
            "GITHUB_ACTIONS",
            "GITLAB_CI",
            "PAW_CI",
        ] {
            command.env_remove(key);
        }
        command
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.path(".aws-config-none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.path(".aws-credentials-none"))
            .env("PAW_PACKER", packer());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.stdin(std::process::Stdio::null());
        command
    }

    /// Every file below the folder with its content, to tell what a run changed.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        collect(self.dir.path(), self.dir.path(), &mut files);
        files
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            files.insert(path.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&path).unwrap_or_default());
        }
    }
}

/// A running paw's output, read up to the line that holds `marker` (which must come): the lines
/// read. The rest stays to be read: a paw whose stdout is closed fails to write to it.
#[track_caller]
pub fn read_until(lines: &mut impl Iterator<Item = std::io::Result<String>>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let found = line.contains(marker);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("paw's output ended without {marker:?}: {seen:#?}");
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().map(Result::unwrap) {
        let target = to.join(entry.file_name());
        let name = entry.file_name().to_string_lossy().into_owned();
        // paw's state and the rendered outputs (in a step folder) of a local run of the example are
        // not part of it.
        let step_folder = from.join(paw_core::config::STEP_PARAM_FILE).is_file();
        if name == ".paw" || (step_folder && paw_core::render::is_rendered_output(&name)) {
            continue;
        }
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Starts `script` with the virtualenv's python, on a free loopback port that the script writes
/// to the file named by its first argument; returns the process, the port, and the folder that
/// holds the file (kept as long as the server runs). Fails, never skips, without scripts/setup.
pub fn start_python_server(script: &Path, env: &[(&str, &str)]) -> (std::process::Child, String, tempfile::TempDir) {
    let python = examples_dir().join("../.venv/bin/python");
    assert!(python.is_file(), "the virtualenv is missing: run scripts/setup (it creates .venv with the emulator)");
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let child = Command::new(python)
        .arg(script)
        .arg(&port_file)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let port = loop {
        if let Ok(port) = std::fs::read_to_string(&port_file).map(|port| port.trim().to_string())
            && !port.is_empty()
        {
            break port;
        }
        assert!(std::time::Instant::now() < deadline, "{} did not start within 60s", script.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    (child, port, dir)
}
