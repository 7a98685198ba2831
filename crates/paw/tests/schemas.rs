//! The JSON Schemas of workflow_param.json and step_param.json (`schema/`): generated from paw's
//! config types, followed by every example and fixture, and refusing what paw refuses.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{Paw, examples_dir};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schemas() -> [(&'static str, Value); 2] {
    [
        ("workflow_param.schema.json", paw_core::config::workflow_param_schema()),
        ("step_param.schema.json", paw_core::config::step_param_schema()),
    ]
}

#[test]
fn the_schemas_are_generated_from_paws_config_types() {
    for (name, schema) in schemas() {
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = repo_root().join("schema").join(name);
        if std::env::var_os("PAW_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        assert!(
            std::fs::read_to_string(&path).unwrap_or_default() == generated,
            "schema/{name} is not what paw's config types say: run \
             `PAW_UPDATE_DOCS=1 cargo test -p paw --test integration schemas` and commit it"
        );
    }
}

/// Each document's first error against `schema` (None: it follows the schema), by Python's
/// jsonschema from .venv.
fn schema_errors(schema: &str, documents: &[Value]) -> Vec<Option<String>> {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let path = dir.path().join(format!("{index}.json"));
            std::fs::write(&path, document.to_string()).unwrap();
            path
        })
        .collect();
    let python = repo_root().join(".venv/bin/python");
    assert!(python.is_file(), "no .venv: run scripts/setup");
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        validator = jsonschema.Draft202012Validator(schema)\n\
        for path in sys.argv[2:]:\n\
        \x20   errors = sorted(validator.iter_errors(json.load(open(path))), key=lambda e: list(e.path))\n\
        \x20   print(json.dumps(errors[0].message if errors else None))\n";
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(repo_root().join("schema").join(schema))
        .args(&paths)
        .output()
        .unwrap();
    assert!(output.status.success(), "the schema check ran: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// A JSON file as paw reads it (comments and trailing commas allowed).
fn read_json(path: &Path) -> Value {
    Value::Object(paw_core::json::JsonFile::load(path).unwrap().object)
}

#[test]
fn every_example_and_fixture_follows_the_schemas() {
    let init = Paw::new();
    init.run(&["init", "new"]).success();
    let mut folders: Vec<PathBuf> =
        ["chain", "fanout", "variants"].iter().map(|name| examples_dir().join(name)).collect();
    folders.push(repo_root().join("crates/paw-core/tests/render/workflow"));
    folders.push(init.path("new"));
    let mut workflow_params = Vec::new();
    let mut step_params = Vec::new();
    for folder in folders {
        workflow_params.push((folder.join("workflow_param.json"), read_json(&folder.join("workflow_param.json"))));
        for entry in std::fs::read_dir(&folder).unwrap().map(Result::unwrap) {
            let step_param = entry.path().join("step_param.json");
            if step_param.is_file() {
                step_params.push((step_param.clone(), read_json(&step_param)));
            }
        }
    }
    assert!(step_params.len() >= 10, "every example's steps are checked");
    for (schema, files) in [("workflow_param.schema.json", workflow_params), ("step_param.schema.json", step_params)] {
        let documents: Vec<Value> = files.iter().map(|(_, document)| document.clone()).collect();
        for ((path, _), error) in files.iter().zip(schema_errors(schema, &documents)) {
            assert_eq!(error, None, "{} against {schema}", path.display());
        }
    }
}

#[test]
fn paw_init_names_the_schemas_and_paw_reads_the_folder() {
    let paw = Paw::new();
    paw.run(&["init", "wf"]).success();
    assert!(paw.read("wf/workflow_param.json").contains(r#""$schema": "./.schema/workflow_param.schema.json""#));
    assert!(paw.read("wf/step1/step_param.json").contains(r#""$schema": "../.schema/step_param.schema.json""#));
    for name in ["workflow_param", "step_param"] {
        let written: Value = serde_json::from_str(&paw.read(&format!("wf/.schema/{name}.schema.json"))).unwrap();
        let published: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join(format!("schema/{name}.schema.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(written, published, "paw init writes the schemas it publishes");
    }
    let steps = paw.run(&["-w", "wf", "--json", "steps"]).success().json();
    assert_eq!(steps[0]["step_id"], "step1", "{steps}");
}

/// A minimal workflow_param.json with `key` set to `value`.
fn workflow_param_with(key: &str, value: Value) -> Value {
    let mut param =
        json!({"workflow_id": "w1", "root_base_ami_id": "ami-0123456789abcdef0", "root_base_ami_name": "base"});
    param[key] = value;
    param
}

/// paw's verdict on a one-step workflow with this workflow_param.json and step_param.json:
/// its error message, or None.
fn paw_error(workflow_param: &Value, step_param: &Value) -> Option<String> {
    let paw = Paw::new();
    paw.write("wf/workflow_param.json", &serde_json::to_string_pretty(workflow_param).unwrap());
    paw.write("wf/s1/step_param.json", &serde_json::to_string_pretty(step_param).unwrap());
    paw.write("wf/s1/templates/.pkr.hcl", "");
    let run = paw.run(&["-w", "wf", "steps"]);
    match run.code {
        0 => None,
        2 => Some(run.stderr),
        code => panic!("paw steps exited {code}: {}", run.stderr),
    }
}

#[test]
fn a_misspelt_key_in_a_block_is_refused_by_the_schema_and_by_paw() {
    let step = json!({"step_id": "s1"});
    let cases = [
        ("lifecycle", json!({"keep": 2, "delete_after_day": 90})),
        ("distribution", json!([{"region": "eu-west-1", "acounts": ["222222222222"]}])),
        ("variants", json!({"arm64": {"lifecycle": {"kep": 1}}})),
        ("variants", json!({"arm64": {"distribution": [{"regon": "eu-west-1"}]}})),
        ("variants", json!({"arm64": {"catalog": "sqlite:other.sqlite"}})),
        ("catalog", json!({"uri": "dynamodb:images", "regoin": "eu-west-1"})),
        ("root_base_ami_filter", json!({"name": "ubuntu/*", "owners": ["099720109477"], "arch": "x86_64"})),
    ];
    let documents: Vec<Value> = cases.iter().map(|(key, value)| workflow_param_with(key, value.clone())).collect();
    for ((key, value), (document, schema_error)) in
        cases.iter().zip(documents.iter().zip(schema_errors("workflow_param.schema.json", &documents)))
    {
        assert!(schema_error.is_some(), "the schema refuses \"{key}\": {value}");
        let error = paw_error(document, &step);
        assert!(error.as_deref().is_some_and(|error| error.contains(key)), "paw refuses \"{key}\": {value}: {error:?}");
    }

    let step_lifecycle = json!({"step_id": "s1", "lifecycle": {"keep": 1, "protect_launched_within": 3}});
    assert!(schema_errors("step_param.schema.json", std::slice::from_ref(&step_lifecycle))[0].is_some());
    let error = paw_error(&workflow_param_with("name", json!("n")), &step_lifecycle);
    assert!(error.is_some_and(|error| error.contains("lifecycle")), "paw refuses the step's policy");

    // And both take the blocks written right.
    let right = workflow_param_with(
        "variants",
        json!({"arm64": {"instance_type": "t4g.small", "lifecycle": {"keep": 1}}, "amd64": {}}),
    );
    assert_eq!(schema_errors("workflow_param.schema.json", std::slice::from_ref(&right)), [None]);
    assert_eq!(paw_error(&right, &step), None);
}

/// Every key the schema describes is one paw reads: given a value of the wrong type, both refuse it.
#[test]
fn every_key_of_the_schemas_is_one_paw_checks() {
    let schema = paw_core::config::workflow_param_schema();
    let keys: Vec<String> =
        schema["properties"].as_object().unwrap().keys().filter(|key| *key != "$schema").cloned().collect();
    assert!(keys.len() >= 20, "{keys:?}");
    let documents: Vec<Value> = keys.iter().map(|key| workflow_param_with(key, json!(7))).collect();
    let step = json!({"step_id": "s1"});
    for ((key, document), schema_error) in
        keys.iter().zip(&documents).zip(schema_errors("workflow_param.schema.json", &documents))
    {
        assert!(schema_error.is_some(), "the schema refuses \"{key}\": 7");
        assert!(paw_error(document, &step).is_some(), "paw refuses \"{key}\": 7");
    }

    let schema = paw_core::config::step_param_schema();
    let keys: Vec<String> =
        schema["properties"].as_object().unwrap().keys().filter(|key| *key != "$schema").cloned().collect();
    let documents: Vec<Value> = keys
        .iter()
        .map(|key| {
            let mut step = json!({"step_id": "s1"});
            step[key] = if key == "previous_step_id" { json!(7) } else { json!(true) };
            step
        })
        .collect();
    for ((key, document), schema_error) in
        keys.iter().zip(&documents).zip(schema_errors("step_param.schema.json", &documents))
    {
        assert!(schema_error.is_some(), "the schema refuses step_param's \"{key}\"");
        assert!(paw_error(&workflow_param_with("name", json!("n")), document).is_some(), "paw refuses \"{key}\"");
    }
}
