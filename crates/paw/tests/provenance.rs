//! Provenance: every image's signed statement, verified along its lineage; each tampering named;
//! the exported envelope verified outside paw.

use std::path::Path;

use serde_json::Value;

use crate::emulator::Emulator;
use crate::harness::{Paw, examples_dir};

const CATALOG: &str = "wf/.paw/catalog.sqlite";

/// The chain example, built, its statements signed by `provenance` (workflow_param.json's block).
fn signed_chain(emulator: &Emulator, provenance: &str) -> Paw {
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit(
        "wf/workflow_param.json",
        "\"workflow_id\":",
        &format!("\"provenance\": {provenance},\n    \"workflow_id\":"),
    );
    paw.run(&["-w", "wf", "build"]).success();
    paw
}

/// `paw verify STEP --json`: each image of the chain and its problems.
fn verify(paw: &Paw, args: &[&str]) -> (i32, Vec<(String, Vec<String>)>) {
    let mut all = vec!["-w", "wf", "verify", "--json"];
    all.extend(args);
    let run = paw.run(&all);
    let checked: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{}\n{}", run.stdout, run.stderr));
    let checked = checked.as_array().unwrap().iter().map(|image| {
        let problems = image["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
        (image["step_id"].as_str().unwrap().to_string(), problems)
    });
    (run.code, checked.collect())
}

fn ami(paw: &Paw, step: &str) -> String {
    paw.run(&["-w", "wf", "images", "show", step, "--json"]).success().json()["ami_id"].as_str().unwrap().to_string()
}

/// The exported envelope, checked by tests/verify_dsse.py (Python's `cryptography`, not paw).
fn verified_outside(paw: &Paw, export: &Value) -> std::process::Output {
    let file = paw.path("export.json");
    std::fs::write(&file, export.to_string()).unwrap();
    std::process::Command::new(examples_dir().join("../.venv/bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_dsse.py"))
        .arg(&file)
        .output()
        .unwrap()
}

#[test]
fn a_kms_signed_chain_verifies_and_each_tampering_is_named() {
    let emulator = Emulator::start();
    emulator.make_signing_key("alias/paw-provenance");
    let paw = signed_chain(&emulator, r#"{"kms_key": "alias/paw-provenance"}"#);
    let (code, checked) = verify(&paw, &["step3"]);
    let steps: Vec<&str> = checked.iter().map(|(step, _)| step.as_str()).collect();
    assert_eq!((code, steps), (0, vec!["step3", "step2", "step1"]), "{checked:#?}");
    assert!(checked.iter().all(|(_, problems)| problems.is_empty()), "{checked:#?}");

    // Outside paw: the exported envelope and key, DSSE's PAE and ECDSA P-256.
    let export = paw.run(&["-w", "wf", "images", "provenance", "step3", "--json"]).success().json();
    assert!(export["public_key"].as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"), "{export:#}");
    let outside = verified_outside(&paw, &export);
    assert!(outside.status.success(), "{}", String::from_utf8_lossy(&outside.stderr));
    assert!(String::from_utf8_lossy(&outside.stdout).contains(&ami(&paw, "step3")));
    let envelope: paw_core::provenance::Envelope = serde_json::from_value(export["envelope"].clone()).unwrap();
    let statement = envelope.statement().unwrap();
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
    assert_eq!(dependencies[0]["uri"], format!("ec2:us-east-1::{}", ami(&paw, "step2")), "{statement:#}");
    let mut flipped = export.clone();
    let payload = flipped["envelope"]["payload"].as_str().unwrap().to_string();
    let changed = if payload.starts_with('e') { "f" } else { "e" };
    flipped["envelope"]["payload"] = Value::String(format!("{changed}{}", &payload[1..]));
    assert!(!verified_outside(&paw, &flipped).status.success(), "a flipped byte must not verify outside paw");

    // A tag changed by hand.
    let step2 = ami(&paw, "step2");
    emulator.tamper(&["tag", &step2, "paw:provenance", "0000"]);
    let (code, checked) = verify(&paw, &["step3"]);
    assert_eq!(code, 1);
    assert!(checked[1].1.iter().any(|p| p.starts_with("its paw:provenance tag says 0000")), "{checked:#?}");
    assert!(checked[0].1.is_empty() && checked[2].1.is_empty(), "only step2 is named: {checked:#?}");
    let run = paw.run(&["-w", "wf", "verify", "step3"]);
    assert!(run.stderr.contains("the provenance of step2"), "{}", run.stderr);
    let sealed = paw.run(&["-w", "wf", "images", "show", "step2", "--json"]).success().json()["provenance"].clone();
    let digest = paw_core::provenance::sha256_hex(sealed.as_str().unwrap().as_bytes());
    emulator.tamper(&["tag", &step2, "paw:provenance", &digest]);
    assert_eq!(verify(&paw, &["step3"]).0, 0, "the tag restored");

    // A record's parent edited in the catalog.
    let step1 = ami(&paw, "step1");
    let edit = "UPDATE images SET base_ami_id = 'ami-0badbadbadbadbad0' WHERE step_id = 'step2'";
    emulator.tamper(&["sql", paw.path(CATALOG).to_str().unwrap(), edit]);
    let (_, checked) = verify(&paw, &["step3"]);
    let said = format!("the catalog says it was built on ami-0badbadbadbadbad0, its statement says {step1}");
    assert!(checked[1].1.contains(&said), "{checked:#?}");
    let undo = format!("UPDATE images SET base_ami_id = '{step1}' WHERE step_id = 'step2'");
    emulator.tamper(&["sql", paw.path(CATALOG).to_str().unwrap(), &undo]);

    // An envelope byte flipped in the catalog: its signature fails, and its child's statement no
    // longer names it.
    let edit =
        "UPDATE images SET provenance = replace(provenance, '\"sig\":\"M', '\"sig\":\"N') WHERE step_id = 'step1'";
    emulator.tamper(&["sql", paw.path(CATALOG).to_str().unwrap(), edit]);
    let (_, checked) = verify(&paw, &["step3"]);
    assert!(
        checked[1].1.iter().any(|p| p.starts_with(&format!("its parent {step1}'s statement is not the one"))),
        "{checked:#?}"
    );
    let (_, alone) = verify(&paw, &["step1", "--no-chain"]);
    assert!(alone[0].1.iter().any(|p| p.starts_with("its signature does not verify")), "{alone:#?}");
    assert!(alone[0].1.iter().any(|p| p.starts_with("its paw:provenance tag says")), "{alone:#?}");

    // An AMI replaced by another with the same tags.
    let swapped = emulator.tamper(&["swap", &step2]);
    let edit = format!("UPDATE images SET ami_id = '{swapped}' WHERE step_id = 'step2'");
    emulator.tamper(&["sql", paw.path(CATALOG).to_str().unwrap(), &edit]);
    let (code, checked) = verify(&paw, &["step2", "--no-chain"]);
    assert_eq!(code, 1);
    assert!(
        checked[0].1.iter().any(|p| p.starts_with(&format!("{swapped} is not the AMI its statement names"))),
        "{checked:#?}"
    );
}

#[test]
fn a_local_ed25519_key_signs_the_same_way_and_no_signer_writes_unsigned_statements() {
    let emulator = Emulator::start();
    // An Ed25519 PKCS#8 key, as `openssl genpkey -algorithm ed25519` writes one.
    let key = tempfile::NamedTempFile::new().unwrap();
    let make = "from cryptography.hazmat.primitives import serialization as s; \
                from cryptography.hazmat.primitives.asymmetric import ed25519; import sys; \
                sys.stdout.buffer.write(ed25519.Ed25519PrivateKey.generate().private_bytes(\
                s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))";
    let pem =
        std::process::Command::new(examples_dir().join("../.venv/bin/python")).args(["-c", make]).output().unwrap();
    assert!(pem.status.success(), "{}", String::from_utf8_lossy(&pem.stderr));
    std::fs::write(key.path(), &pem.stdout).unwrap();
    let paw = emulator.configure(Paw::example("chain")).env("PAW_TEST_SIGNING_KEY", key.path().to_str().unwrap());
    paw.edit(
        "wf/workflow_param.json",
        "\"workflow_id\":",
        "\"provenance\": {\"key_file_env\": \"PAW_TEST_SIGNING_KEY\"},\n    \"workflow_id\":",
    );
    paw.run(&["-w", "wf", "build"]).success();
    let (code, checked) = verify(&paw, &["step3"]);
    assert_eq!(code, 0, "{checked:#?}");
    let export = paw.run(&["-w", "wf", "images", "provenance", "step3", "--json"]).success().json();
    assert!(verified_outside(&paw, &export).status.success());
    let pem = paw.path("key.pem");
    std::fs::write(&pem, export["public_key"].as_str().unwrap()).unwrap();
    let (code, _) = verify(&paw, &["step1", "--public-key", pem.to_str().unwrap()]);
    assert_eq!(code, 0, "with the exported key");

    // A key that cannot be read stops the build before anything is built.
    let broken = paw
        .run_with(&[("PAW_TEST_SIGNING_KEY", "/nonexistent/key.pem")], &["-w", "wf", "--workflow-id", "w2", "build"]);
    assert_ne!(broken.code, 0);
    assert!(broken.stderr.contains("/nonexistent/key.pem"), "{}", broken.stderr);
    assert!(!paw.path("wf/.paw/logs/w2").exists(), "nothing built");

    // Without a signer, statements are written unsigned, and verify says so.
    let plain = emulator.configure(Paw::example("chain"));
    plain.edit("wf/workflow_param.json", "paw-2024-06-13-12-00-00", "unsigned-1");
    plain.run(&["-w", "wf", "build"]).success();
    let (code, checked) = verify(&plain, &["step1", "--public-key", pem.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(checked[0].1.contains(&"its signature does not verify: it is unsigned".to_string()), "{checked:#?}");
}
