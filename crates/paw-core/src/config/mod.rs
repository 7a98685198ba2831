//! `workflow_param.json` and `step_param.json`: the keys paw knows are typed, every other key is kept
//! in file order so that templates can use it (the seed needed subclassing for that). One file per
//! parameter file and block: workflow.rs, step.rs, lifecycle.rs, distribution.rs, notify.rs,
//! provenance.rs, catalog.rs; here,
//! what they share (the names paw accepts).

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::ec2::BaseAmiQuery;
use crate::error::{Error, ErrorKind, Result};
use crate::json::JsonFile;

pub const WORKFLOW_PARAM_FILE: &str = "workflow_param.json";
pub const STEP_PARAM_FILE: &str = "step_param.json";

mod catalog;
mod distribution;
mod lifecycle;
mod notify;
mod provenance;
mod schema;
mod step;
mod workflow;

pub use catalog::*;
pub use distribution::*;
pub use lifecycle::*;
pub use notify::*;
pub use provenance::*;
pub use schema::*;
pub use step::*;
pub use workflow::*;

/// A workflow name (`"name"`, or the folder's name): part of catalog keys, tags and SSM paths.
pub fn check_workflow_name(name: &str) -> std::result::Result<(), String> {
    check_short_name(name, "workflow name")
}

/// A name of up to 64 characters of `is_plain_name`'s; `what` names it in the message.
fn check_short_name(name: &str, what: &str) -> std::result::Result<(), String> {
    if is_plain_name(name) && name.len() <= 64 {
        return Ok(());
    }
    Err(format!(
        "\"{name}\" is not a {what}: use 1 to 64 letters, digits, '-', '_' and '.', starting with a letter or digit"
    ))
}

/// An environment variable's name as a block may give it (`secret_env`, `key_file_env`): letters,
/// digits and '_'.
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Letters, digits, '-', '_' and '.', starting with a letter or digit: safe in file names, AMI
/// names, tags and catalog keys (step ids, workflow names, variants).
pub fn is_plain_name(name: &str) -> bool {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow_param(text: &str) -> Result<WorkflowParam> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WORKFLOW_PARAM_FILE);
        std::fs::write(&path, text).unwrap();
        WorkflowParam::load(&path, &[])
    }

    const MINIMAL: &str = r#"{"workflow_id": "w1", "root_base_ami_id": "ami-1", "root_base_ami_name": "base/"}"#;

    #[test]
    fn a_param_set_from_outside_the_file_wins_and_is_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WORKFLOW_PARAM_FILE);
        std::fs::write(
            &path,
            r#"{"workflow_id": "w1", "root_base_ami_id": "ami-1", "root_base_ami_name": "b", "size": "s"}"#,
        )
        .unwrap();
        let env = [("PAW_PARAM_SIZE".to_string(), "m".to_string()), ("HOME".to_string(), "/root".to_string())];
        let mut overrides = ParamOverride::from_env(env.into_iter()).unwrap();
        overrides.push(ParamOverride::from_arg("packages=[\"curl\"]").unwrap());
        overrides.push(ParamOverride::from_arg("size=l").unwrap());
        let param = WorkflowParam::load(&path, &overrides).unwrap();
        let set: Vec<(&str, &Value)> = param.overridden().collect();
        assert_eq!(set, [("packages", &serde_json::json!(["curl"])), ("size", &Value::from("l"))], "the last one wins");
        assert_eq!(param.keys_deciding_images()["size"], "l", "counted in the fingerprint");

        let bad = ParamOverride::from_arg("root_base_ami_id=img-1").unwrap();
        let err = WorkflowParam::load(&path, &[bad]).unwrap_err();
        assert_eq!(err.location.unwrap().to_string(), "--param root_base_ami_id");
        assert!(err.message.contains("\"root_base_ami_id\" is \"img-1\", not an AMI id"), "{}", err.message);
        assert!(ParamOverride::from_arg("size").unwrap_err().message.contains("expected KEY=VALUE"));
        assert!(ParamOverride::from_arg("workflow_id=x").unwrap_err().help.unwrap().contains("--workflow-id"));
    }

    #[test]
    fn unknown_keys_reach_templates_in_order() {
        let text = r#"{"zeta": 1, "workflow_id": "w1", "root_base_ami_id": "ami-1",
            "root_base_ami_name": "b", "aws_tags": {"b": "1", "a": "2"}, "alpha": {"x": true}}"#;
        let param = workflow_param(text).unwrap();
        assert_eq!(param.aws_tags, [("b".to_string(), "1".to_string()), ("a".into(), "2".into())]);
        let value = param.template_value("eu-west-1");
        let keys: Vec<_> = value.keys().map(String::as_str).collect();
        assert_eq!(&keys[..6], ["zeta", "workflow_id", "root_base_ami_id", "root_base_ami_name", "aws_tags", "alpha"]);
        assert_eq!(value["vpc_name"], Value::Null);
        assert_eq!(value["aws_region"], "eu-west-1");
    }

    #[test]
    fn a_followed_base_replaces_the_pinned_one_and_templates_see_what_it_read() {
        let param = workflow_param(r#"{"workflow_id": "w1", "root_base_ami": {"ssm_parameter": "/vendor/current"}}"#);
        let mut param = param.unwrap();
        let followed = param.followed_base.clone().unwrap();
        assert_eq!(followed.source, BaseSource::SsmParameter("/vendor/current".into()));
        assert!(param.check_base_known().is_err(), "not read yet");
        assert!(!param.keys_deciding_images().contains_key(ROOT_BASE_AMI), "what it reads counts, not where");
        let pinned =
            workflow_param(r#"{"workflow_id": "w1", "root_base_ami_id": "ami-9", "root_base_ami_name": "vendor/os"}"#);
        param.follow("ami-9".into(), "vendor/os".into());
        param.check_base_known().unwrap();
        assert_eq!(param.keys_deciding_images(), pinned.unwrap().keys_deciding_images(), "the same base, pinned");
        let value = param.template_value("eu-west-1");
        assert_eq!((&value["root_base_ami_id"], &value["root_base_ami_name"]), (&"ami-9".into(), &"vendor/os".into()));

        let filter = r#"{"workflow_id": "w1", "root_base_ami": {"filter": {"name": "os-*", "owners": ["self"]}}}"#;
        assert!(matches!(workflow_param(filter).unwrap().followed_base.unwrap().source, BaseSource::Filter(_)));

        for (text, message) in [
            (
                r#"{"workflow_id": "w", "root_base_ami": {"ssm_parameter": "/p"}, "root_base_ami_id": "ami-1"}"#,
                "\"root_base_ami_id\" is given, and \"root_base_ami\" follows the SSM parameter /p",
            ),
            (r#"{"workflow_id": "w", "root_base_ami": {"ssm_parameter": 3}}"#, "not a parameter name"),
            (
                r#"{"workflow_id": "w", "root_base_ami": {"url": "x"}}"#,
                "names neither one \"ssm_parameter\" nor one \"filter\"",
            ),
            (
                r#"{"workflow_id": "w", "root_base_ami": {"filter": {"name": "x"}}}"#,
                "has a \"filter\" that needs \"owners\"",
            ),
            (r#"{"workflow_id": "w", "root_base_ami": "ami-1"}"#, "\"root_base_ami\" must be a map"),
        ] {
            let err = workflow_param(text).unwrap_err();
            assert!(err.message.contains(message), "{text}: {}", err.message);
            assert!(err.location.is_some() && err.help.is_some(), "{text}: {err:?}");
        }
    }

    #[test]
    fn notify_targets_are_a_bus_or_a_webhook_and_each_mistake_is_named() {
        let with = |notify: &str| workflow_param(&MINIMAL.replace('}', &format!(r#", "notify": {notify}}}"#)));
        let targets = with(
            r#"[{"eventbridge_bus": "default"}, {"webhook": "https://h.example.org/p?t=1", "secret_env": "S", "format": "slack", "events": ["paw.build.failed"]}]"#,
        )
        .unwrap()
        .notify;
        assert_eq!(
            (targets[0].name(), targets[1].name()),
            ("eventbridge:default".into(), "webhook:https://h.example.org".into())
        );
        assert!(targets[0].wants(crate::notify::NoticeKind::ImageBuilt));
        assert!(
            !targets[1].wants(crate::notify::NoticeKind::ImageBuilt)
                && targets[1].wants(crate::notify::NoticeKind::BuildFailed)
        );
        assert!(
            with(r#"[{"webhook": "http://127.0.0.1:8080/x"}, {"webhook": "http://[::1]:9/"}]"#).is_ok(),
            "http to this machine"
        );
        for (notify, message) in [
            (r#"{"webhook": "https://x"}"#, "is not a list of targets"),
            (r#"[{"webhook": "http://hooks.example.org/"}]"#, "over http: use https"),
            (r#"[{"webhook": "https://x", "eventbridge_bus": "default"}]"#, "names both"),
            (r#"[{"secret_env": "S"}]"#, "names neither"),
            (r#"[{"eventbridge_bus": "default", "secret_env": "S"}]"#, "a webhook's secret_env or format"),
            (r#"[{"webhook": "https://x", "secret_env": "MY-SECRET"}]"#, "not an environment variable's name"),
            (r#"[{"webhook": "https://x", "events": ["paw.image.made"]}]"#, "paw does not send"),
            (r#"[{"webhook": "https://x", "url": "y"}]"#, "unknown field `url`"),
        ] {
            let err = with(notify).unwrap_err();
            assert!(err.message.contains(message), "{notify}: {}", err.message);
            assert!(err.location.is_some() && err.help.is_some(), "{notify}: {err:?}");
        }
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let text = MINIMAL.replace('}', r#", "aws_access_key_id": "AKIA1", "aws_secret_access_key": "hunter2"}"#);
        let param = workflow_param(&text).unwrap();
        let debug = format!("{:?}", param.credentials);
        assert!(debug.contains("AKIA1") && !debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn is_default_vpc_must_be_a_string_flag() {
        let err = workflow_param(&MINIMAL.replace('}', r#", "is_default_vpc": true}"#)).unwrap_err();
        assert_eq!(err.message, "\"is_default_vpc\" must be a string, found a boolean (true)");
        let err = workflow_param(&MINIMAL.replace('}', r#", "is_default_vpc": "yes"}"#)).unwrap_err();
        assert_eq!(err.message, "\"is_default_vpc\" is \"yes\"");
    }

    #[test]
    fn required_keys_are_named() {
        let err = workflow_param(r#"{"workflow_id": "w"}"#).unwrap_err();
        assert_eq!(err.message, "missing required key \"root_base_ami_id\"");
    }

    #[test]
    fn step_defaults_match_the_seed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STEP_PARAM_FILE);
        std::fs::write(&path, r#"{"step_id": "s", "extra": [1]}"#).unwrap();
        let step = StepParam::load(&path).unwrap();
        assert_eq!(step.previous_step_id, None);
        let value = step.template_value();
        assert_eq!(value["metadata"], serde_json::json!({}));
        assert_eq!(value["extra"], serde_json::json!([1]));
    }

    #[test]
    fn upstream_probes_are_paths_or_objects_and_each_mistake_is_named() {
        let load = |upstream: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(STEP_PARAM_FILE);
            std::fs::write(&path, format!(r#"{{"step_id": "s", "upstream": {upstream}}}"#)).unwrap();
            StepParam::load(&path)
        };
        let probes =
            load(r#"["./a.sh", {"run": "../probes/b.sh", "timeout_seconds": 5, "aws": true}]"#).unwrap().upstream;
        let second = Probe { run: "../probes/b.sh".into(), timeout: std::time::Duration::from_secs(5), aws: true };
        assert_eq!(probes[1], second);
        assert_eq!((probes[0].timeout.as_secs(), probes[0].aws), (60, false), "a minute, no AWS");
        for (upstream, message) in [
            (r#""./a.sh""#, "is not a list of probes"),
            (r#"["/usr/bin/curl"]"#, "not a path relative to the step folder"),
            (r#"[{"timeout_seconds": 5}]"#, "a probe without \"run\""),
            (r#"[{"run": "./a.sh", "timeout_seconds": 0}]"#, "not a number of seconds from 1 to 600"),
            (r#"[{"run": "./a.sh", "aws": "yes"}]"#, "not true or false"),
            (r#"[{"run": "./a.sh", "env": {}}]"#, "unknown key \"env\""),
            (r#"["./a.sh", "./a.sh"]"#, "names ./a.sh twice"),
        ] {
            let err = load(upstream).unwrap_err();
            assert!(err.message.contains(message), "{upstream}: {}", err.message);
            assert!(err.location.is_some() && err.help.is_some(), "{upstream}: {err:?}");
        }
    }

    #[test]
    fn an_sbom_is_a_file_inside_the_step_folder_and_required_provenance_needs_a_signer() {
        let load = |sbom: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(STEP_PARAM_FILE);
            std::fs::write(&path, format!(r#"{{"step_id": "s", "sbom": {sbom}}}"#)).unwrap();
            StepParam::load(&path)
        };
        assert_eq!(load(r#""./out/sbom.cdx.json""#).unwrap().sbom.as_deref(), Some("out/sbom.cdx.json"));
        for sbom in [r#""/tmp/sbom.json""#, r#""../sbom.json""#, r#""""#, r#"".""#] {
            let err = load(sbom).unwrap_err();
            assert!(err.message.contains("not a file's path inside the step folder"), "{sbom}: {}", err.message);
            assert!(err.location.is_some() && err.help.is_some(), "{sbom}: {err:?}");
        }

        let with = |keys: &str| workflow_param(&MINIMAL.replace('}', &format!(", {keys}}}")));
        let signed = r#""provenance": {"kms_key": "alias/k"}"#;
        assert!(with(&format!(r#"{signed}, "require_provenance": true"#)).unwrap().require_provenance);
        assert!(!with(signed).unwrap().require_provenance, "not unless asked");
        let err = with(r#""require_provenance": true"#).unwrap_err();
        assert!(err.message.contains("but no \"provenance\" signs the statements"), "{}", err.message);
        assert!(err.location.is_some() && err.help.is_some(), "{err:?}");
        let err = with(&format!(r#"{signed}, "require_provenance": "yes""#)).unwrap_err();
        assert!(err.message.contains("not true or false"), "{}", err.message);
    }

    #[test]
    fn a_lifecycle_policy_is_checked_at_its_line_and_a_step_adds_its_keys() {
        let policy = |text: &str| {
            workflow_param(&MINIMAL.replace(
                '}',
                &format!(
                    r#",
            "lifecycle": {text}}}"#
                ),
            ))
        };
        let param = policy(r#"{"keep": 3, "deprecate_after_days": 30, "delete_after_days": 180}"#).unwrap();
        assert_eq!((param.lifecycle.keep, param.lifecycle.delete_after_days), (Some(3), Some(180)));
        for (text, message) in [
            (r#"{"keep": 3, "purge": 1}"#, "unknown field `purge`"),
            (
                r#"{"deprecate_after_days": 30, "delete_after_days": 10}"#,
                "\"delete_after_days\": 10, before \"deprecate_after_days\": 30",
            ),
            (r#"{"keep": 0}"#, "\"keep\": 0"),
            (r#"{"keep": -1}"#, "is not a policy"),
            (r#"[1]"#, "is not a policy"),
        ] {
            let err = policy(text).unwrap_err();
            assert!(err.message.contains(message), "{text}: {}", err.message);
            assert_eq!(err.location.unwrap().line, 2, "{text}: at the key");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STEP_PARAM_FILE);
        std::fs::write(&path, r#"{"step_id": "s", "lifecycle": {"deprecate_after_days": 200}}"#).unwrap();
        let step = StepParam::load(&path).unwrap();
        let err = param.lifecycle.with_step(&step).unwrap_err();
        assert!(err.message.contains("this step's has \"delete_after_days\": 180, before"), "{}", err.message);
        std::fs::write(&path, r#"{"step_id": "s", "lifecycle": {"keep": 1}}"#).unwrap();
        let merged = param.lifecycle.with_step(&StepParam::load(&path).unwrap()).unwrap();
        assert_eq!(
            (merged.keep, merged.deprecate_after_days),
            (Some(1), Some(30)),
            "the step's key wins, the rest stays"
        );
    }
}
