//! What moves under a workflow from outside it, read once per run before anything is planned: a
//! root base AMI that follows its source (`"root_base_ami"`) and the steps' upstream probes
//! (`"upstream"`). Both are fingerprint inputs; neither falls back to an older answer when it
//! cannot be read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use crate::ami::AmiRef;
use crate::config::{BaseSource, Probe, ROOT_BASE_AMI, UPSTREAM};
use crate::ec2::{Ec2, ImageState};
use crate::error::{Error, ErrorKind, Result};
use crate::ssm::Ssm;
use crate::workflow::{Step, Workflow};

/// Reads the root base AMI of each workflow whose base follows a source (`"root_base_ami"`): the
/// SSM parameter's AMI or the filter's newest, read once per run (variants that follow the same
/// source share one read) and checked to be an available AMI of this region. A source that cannot
/// be read is an error naming it, never a fall-back to an older AMI.
pub async fn follow_bases(workflows: &mut [Workflow], ec2: &dyn Ec2, ssm: &dyn Ssm) -> Result<()> {
    let mut read: Vec<(BaseSource, AmiRef)> = Vec::new();
    for workflow in workflows {
        let Some(followed) = &workflow.param.followed_base else { continue };
        let base = match read.iter().find(|(source, _)| *source == followed.source) {
            Some((_, base)) => base.clone(),
            None => {
                let at = workflow.param.json().key_location(ROOT_BASE_AMI);
                let base = read_base(&followed.source, ec2, ssm).await.map_err(|err| match err.location {
                    None => err.at(at),
                    Some(_) => err,
                })?;
                read.push((followed.source.clone(), base.clone()));
                base
            }
        };
        workflow.param.follow(base.id, base.name);
    }
    Ok(())
}

async fn read_base(source: &BaseSource, ec2: &dyn Ec2, ssm: &dyn Ssm) -> Result<AmiRef> {
    let image = match source {
        BaseSource::SsmParameter(name) => {
            let value = ssm.parameter_value(name).await.map_err(|err| Error {
                message: format!("cannot read the root base AMI's SSM parameter {name}: {}", err.message),
                ..err
            })?;
            let Some(ami_id) = value else {
                return Err(Error::new(ErrorKind::Config, format!("there is no SSM parameter {name} in this region"))
                    .help("check the name (`aws ssm get-parameter --name NAME`) and the region, or pin the base with root_base_ami_id"));
            };
            if !ami_id.starts_with("ami-") {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("the SSM parameter {name} holds \"{ami_id}\", not an AMI id"),
                )
                .help("name a parameter whose value is an AMI id (ami-...)"));
            }
            ec2.describe_image(&ami_id).await?.filter(|image| image.state == ImageState::Available).ok_or_else(
                || {
                    Error::new(
                        ErrorKind::Config,
                        format!(
                            "the SSM parameter {name} names {ami_id}, which is not an available AMI of this region"
                        ),
                    )
                    .help(
                        "the parameter's owner must move it to an available AMI; or pin the base with root_base_ami_id",
                    )
                },
            )?
        }
        BaseSource::Filter(query) => ec2.find_base_amis(query).await?.into_iter().next().ok_or_else(|| {
            Error::new(ErrorKind::Config, format!("no available AMI is {source}"))
                .help("`paw base-ami find --name PATTERN --owner ACCOUNT` shows what matches")
        })?,
    };
    Ok(AmiRef { id: image.id, name: image.name })
}

/// Runs the upstream probes of every step of the workflows, each probe once however many steps and
/// variants name it, one after the other, and keeps what each printed on the workflows.
pub async fn run_probes(workflows: &mut [Workflow]) -> Result<()> {
    let mut printed: BTreeMap<PathBuf, String> = BTreeMap::new();
    for workflow in workflows.iter_mut() {
        let mut outputs = BTreeMap::new();
        for step in workflow.steps() {
            for probe in &step.param.upstream {
                let path = probe_path(step, probe);
                let output = match printed.get(&path) {
                    Some(output) => output.clone(),
                    None => {
                        let output = run_probe(workflow, step, probe, &path).await?;
                        printed.insert(path.clone(), output.clone());
                        output
                    }
                };
                outputs.insert(path, output);
            }
        }
        workflow.set_probe_outputs(outputs);
    }
    Ok(())
}

/// Where a step's probe is: what its output is kept by.
pub fn probe_path(step: &Step, probe: &Probe) -> PathBuf {
    step.dir.join(&probe.run)
}

/// The environment variables that carry AWS credentials or say where they are: a probe gets none
/// of them unless it asks (`"aws": true`), and no config or credentials file.
const AWS_CREDENTIAL_FILES: [(&str, &str); 3] = [
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// One probe, in the step folder, under its timeout: what it printed on stdout. A probe that
/// cannot start, fails, times out or prints nothing stops the run, named.
async fn run_probe(workflow: &Workflow, step: &Step, probe: &Probe, path: &std::path::Path) -> Result<String> {
    let named = |what: String| {
        Error::new(ErrorKind::Probe, format!("the upstream probe {} of step \"{}\" {what}", probe.run, step.id))
            .at(step.param.json().key_location(UPSTREAM))
    };
    // It runs in the step folder, which a relative path would be relative to again.
    let program = std::path::absolute(path).map_err(|err| Error::io(path, "find the upstream probe", err))?;
    let mut command = tokio::process::Command::new(program);
    command
        .current_dir(&step.dir)
        .env("PAW_STEP_ID", &step.id)
        .env("PAW_WORKFLOW_NAME", &workflow.name)
        .env("PAW_VARIANT", workflow.variant.as_deref().unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if probe.aws {
        if let Some(profile) = &workflow.param.profile_name {
            command.env("AWS_PROFILE", profile);
        }
    } else {
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("AWS_")) {
            command.env_remove(name);
        }
        command.envs(AWS_CREDENTIAL_FILES);
    }
    let mut child = command.spawn().map_err(|err| {
        named(format!("cannot be run: {err}"))
            .help(format!("make {} an executable (chmod +x, with a #! line) in the step folder", probe.run))
    })?;
    let (mut stdout, mut stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let read = async {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (read_out, read_err) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        let status = child.wait().await;
        (read_out.and(read_err).and(status), out, err)
    };
    let (status, out, err) = match tokio::time::timeout(probe.timeout, read).await {
        Ok(done) => done,
        Err(_) => {
            crate::process::stop_group(&mut child).await;
            return Err(named(format!("did not finish within {} s", probe.timeout.as_secs()))
                .help("make it faster, or give it more time: {\"run\": ..., \"timeout_seconds\": 120}"));
        }
    };
    let status = status.map_err(|err| Error::io(path, "run the upstream probe", err))?;
    let last_lines = || {
        let text = String::from_utf8_lossy(&err);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    };
    if !status.success() {
        let code = status.code().map_or_else(|| status.to_string(), |code| format!("exit status {code}"));
        return Err(named(format!("failed ({code})")).details(last_lines()).help(
            "nothing is planned on an upstream that cannot be read: fix the probe, or its network, and run again",
        ));
    }
    let output = String::from_utf8_lossy(&out).into_owned();
    if output.trim().is_empty() {
        return Err(named("printed nothing".into())
            .help("a probe prints what it saw upstream (a digest, a version, a tag) on stdout"));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{STEP_PARAM_FILE, WORKFLOW_PARAM_FILE};

    /// One step whose probe is `script`, in a workflow folder.
    fn with_probe(script: &str, probe: &str) -> (tempfile::TempDir, Workflow) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join(WORKFLOW_PARAM_FILE),
            r#"{"workflow_id": "w", "root_base_ami_id": "ami-1", "root_base_ami_name": "base"}"#,
        )
        .unwrap();
        std::fs::create_dir_all(root.join("s/templates")).unwrap();
        std::fs::write(root.join("s/templates/.pkr.hcl"), "build {}").unwrap();
        std::fs::write(root.join("s").join(STEP_PARAM_FILE), format!(r#"{{"step_id": "s", "upstream": [{probe}]}}"#))
            .unwrap();
        std::fs::write(root.join("s/probe.sh"), format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(root.join("s/probe.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let workflow = Workflow::load(root).unwrap();
        (dir, workflow)
    }

    async fn fingerprint_after_probes(workflow: &Workflow) -> Result<crate::fingerprint::Fingerprint> {
        let mut workflows = vec![workflow.clone()];
        run_probes(&mut workflows).await?;
        crate::fingerprint::fingerprint(&workflows[0], &workflows[0].steps()[0], "ami-1").await
    }

    #[tokio::test]
    async fn what_a_probe_prints_is_an_input_and_it_sees_no_aws_credentials() {
        let script = r#"echo "release 1, key ${AWS_ACCESS_KEY_ID:-none}, files ${AWS_SHARED_CREDENTIALS_FILE}""#;
        let (_dir, workflow) = with_probe(script, r#""./probe.sh""#);
        let step = &workflow.steps()[0];
        let err = crate::fingerprint::fingerprint(&workflow, step, "ami-1").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal, "never fingerprinted unread: {err:?}");

        let mut workflows = vec![workflow.clone()];
        // SAFETY: no other test of this binary reads or writes AWS_ACCESS_KEY_ID.
        unsafe { std::env::set_var("AWS_ACCESS_KEY_ID", "AKIASECRET") };
        run_probes(&mut workflows).await.unwrap();
        let printed = workflows[0].probe_output(step, &step.param.upstream[0]).unwrap();
        assert_eq!(printed, "release 1, key none, files /dev/null\n");
        let fingerprint = crate::fingerprint::fingerprint(&workflows[0], step, "ami-1").await.unwrap();
        assert!(fingerprint.inputs.contains_key("probe:./probe.sh"), "{:?}", fingerprint.inputs);

        std::fs::write(step.dir.join("probe.sh"), "#!/bin/sh\necho 'release 1, key none, files /dev/null'\n").unwrap();
        let same = fingerprint_after_probes(&workflow).await.unwrap();
        assert_eq!(same.changed_since(&fingerprint.inputs), ["probe.sh"], "the same output, only the script changed");
        std::fs::write(step.dir.join("probe.sh"), "#!/bin/sh\necho 'release 2, key none, files /dev/null'\n").unwrap();
        let moved = fingerprint_after_probes(&workflow).await.unwrap();
        assert_eq!(moved.changed_since(&same.inputs), ["probe.sh", "probe:./probe.sh"], "a new output is named");
    }

    #[tokio::test]
    async fn a_probe_that_fails_times_out_prints_nothing_or_cannot_run_stops_the_run_named() {
        for (script, probe, message) in [
            ("echo mirror unreachable >&2; exit 3", r#""./probe.sh""#, "failed (exit status 3)"),
            ("sleep 30", r#"{"run": "./probe.sh", "timeout_seconds": 1}"#, "did not finish within 1 s"),
            ("true", r#""./probe.sh""#, "printed nothing"),
            ("true", r#""./missing.sh""#, "cannot be run"),
        ] {
            let (_dir, workflow) = with_probe(script, probe);
            let started = std::time::Instant::now();
            let err = fingerprint_after_probes(&workflow).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Probe, "{script}: {err:?}");
            assert!(
                err.message.contains("of step \"s\" ") && err.message.contains(message),
                "{script}: {}",
                err.message
            );
            assert!(err.location.unwrap().to_string().contains(STEP_PARAM_FILE), "{script}");
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{script}: bounded");
            if message.starts_with("failed") {
                assert_eq!(err.details.as_deref(), Some("mirror unreachable"));
            }
        }
    }
}
