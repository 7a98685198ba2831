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
    emulator.make_signing_key("alias/paw-provenance", "ECC_NIST_P256");
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

/// An SPDX SBOM of one package per line of the step folder's packages.txt, written by a provisioner
/// (on real instances, packer's `file` provisioner with direction = "download" fetches it).
const MAKE_SBOM: &str = r#"#!/bin/sh
set -eu
sep=""
printf '{"spdxVersion": "SPDX-2.3", "packages": [' > sbom.spdx.json
while read -r name version; do
  printf '%s{"name": "%s", "versionInfo": "%s"}' "$sep" "$name" "$version" >> sbom.spdx.json
  sep=", "
done < packages.txt
printf ']}\n' >> sbom.spdx.json
"#;

fn statement_of(paw: &Paw, workflow_id: &str, step: &str) -> Value {
    let export =
        paw.run(&["-w", "wf", "--workflow-id", workflow_id, "images", "provenance", step, "--json"]).success().json();
    let envelope: paw_core::provenance::Envelope = serde_json::from_value(export["envelope"].clone()).unwrap();
    envelope.statement().unwrap()
}

/// SBOMs stored beside the statements and diffed between two builds; the tests' verdicts, packer
/// and the caller among what a statement says; `require_provenance` refusing a channel set and a
/// child's build on an image that does not verify; the report's badges.
#[test]
fn sboms_diff_and_required_provenance_refuses_what_does_not_verify() {
    let emulator = Emulator::start();
    emulator.make_signing_key("alias/paw-provenance", "ECC_NIST_P256");
    let paw = emulator.configure(Paw::example("chain"));
    paw.edit(
        "wf/workflow_param.json",
        "\"workflow_id\":",
        "\"provenance\": {\"kms_key\": \"alias/paw-provenance\"},\n    \"require_provenance\": true,\n    \"workflow_id\":",
    );
    paw.write("wf/step2/tests/boots", "#!/bin/sh\necho \"$PAW_AMI_ID boots\"\n");
    paw.write("wf/step3/make_sbom.sh", MAKE_SBOM);
    for script in ["wf/step2/tests/boots", "wf/step3/make_sbom.sh"] {
        std::fs::set_permissions(paw.path(script), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    paw.write("wf/step3/packages.txt", "openssl 3.0.11\ncurl 7.88.1\nbash 5.2.15\n");
    paw.edit("wf/step3/step_param.json", "\"metadata\":", "\"sbom\": \"sbom.spdx.json\",\n    \"metadata\":");
    paw.edit(
        "wf/step3/templates/.pkr.hcl",
        "  provisioner \"shell-local\" {\n    script           = \"install_app.sh\"",
        "  provisioner \"shell-local\" {\n    script = \"make_sbom.sh\"\n  }\n\n  provisioner \"shell-local\" {\n    script           = \"install_app.sh\"",
    );
    let doctor = paw.run(&["-w", "wf", "doctor"]).stdout.clone();
    assert!(
        doctor.contains("✓ provenance: statements signed by alias/paw-provenance (ECDSA P-256); required"),
        "{doctor}"
    );
    paw.run(&["-w", "wf", "--workflow-id", "w1", "build"]).success();
    assert_eq!(verify(&paw, &["--workflow-id", "w1", "step3"]).0, 0);

    // What a statement says beyond the chain: the test verdicts, packer, who built it, the SBOM.
    let step2 = statement_of(&paw, "w1", "step2");
    let byproducts = &step2["predicate"]["runDetails"]["byproducts"];
    assert_eq!(byproducts[0]["name"], "tests", "{step2:#}");
    assert_eq!(byproducts[0]["annotations"]["passed"], true);
    assert_eq!(byproducts[0]["annotations"]["results"][0]["name"], "boots");
    let dependencies = step2["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
    assert!(dependencies.iter().any(|dep| dep["uri"] == "pkg:generic/packer@1.6.6"), "{dependencies:#?}");
    let builder = step2["predicate"]["runDetails"]["builder"]["id"].as_str().unwrap();
    assert!(builder.starts_with("arn:aws:"), "the caller's ARN: {builder}");
    let sbom = paw.run(&["-w", "wf", "--workflow-id", "w1", "images", "sbom", "step3"]).success().stdout.clone();
    assert!(sbom.contains(r#"{"name": "curl", "versionInfo": "7.88.1"}"#), "{sbom}");
    let step3 = statement_of(&paw, "w1", "step3");
    let sbom_byproduct = &step3["predicate"]["runDetails"]["byproducts"][0];
    assert_eq!(sbom_byproduct["name"], "sbom.spdx.json", "{step3:#}");
    let left = std::fs::read(paw.path("wf/step3/sbom.spdx.json")).unwrap();
    assert_eq!(sbom_byproduct["digest"]["sha256"], paw_core::provenance::sha256_hex(&left), "the file the build left");
    // The SBOM the build left in the folder is no input: nothing to rebuild.
    paw.run(&["-w", "wf", "--workflow-id", "w1", "plan", "--detailed-exitcode"]).success();

    // A second build with other packages: only step3 is built; its SBOM diffs from the first's.
    paw.write("wf/step3/packages.txt", "openssl 3.0.13\nbash 5.2.15\njq 1.7.1\n");
    paw.run(&["-w", "wf", "--workflow-id", "w2", "build"]).success();
    let diff = paw.run(&["-w", "wf", "images", "sbom-diff", "step3", "w1", "w2", "--json"]).success().json();
    assert_eq!(diff["added"], serde_json::json!([{"name": "jq", "version": "1.7.1"}]), "{diff:#}");
    assert_eq!(diff["removed"], serde_json::json!([{"name": "curl", "version": "7.88.1"}]));
    assert_eq!(diff["changed"], serde_json::json!([{"name": "openssl", "from": "3.0.11", "to": "3.0.13"}]));
    let text = paw.run(&["-w", "wf", "images", "sbom-diff", "step3", "w1", "w2"]).success().stdout.clone();
    assert!(text.contains("1 added, 1 removed, 1 changed") && text.contains("~ openssl 3.0.11 → 3.0.13"), "{text}");

    // A channel is not set to an image that does not verify; it is once the tag is restored.
    let w2_step3 = paw.run(&["-w", "wf", "--workflow-id", "w2", "images", "show", "step3", "--json"]).success().json();
    let ami3 = w2_step3["ami_id"].as_str().unwrap();
    emulator.tamper(&["tag", ami3, "paw:provenance", "0000"]);
    let refused = paw.run(&["-w", "wf", "--workflow-id", "w2", "channel", "set", "stable", "step3"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("channel stable is not set: "), "{}", refused.stderr);
    assert!(refused.stderr.contains("its paw:provenance tag says 0000"), "{}", refused.stderr);
    let history = paw.run(&["-w", "wf", "--workflow-id", "w2", "channel", "history", "stable", "step3", "--json"]);
    assert_eq!(history.json(), serde_json::json!([]), "nothing was written");
    let digest = paw_core::provenance::sha256_hex(w2_step3["provenance"].as_str().unwrap().as_bytes());
    emulator.tamper(&["tag", ami3, "paw:provenance", &digest]);
    paw.run(&["-w", "wf", "--workflow-id", "w2", "channel", "set", "stable", "step3"]).success();

    // A child is not built on a parent that does not verify: nothing is made.
    let ami2 = ami_of(&paw, "w1", "step2");
    emulator.tamper(&["tag", &ami2, "paw:provenance", "0000"]);
    paw.write("wf/step3/packages.txt", "openssl 3.0.14\n");
    let refused = paw.run(&["-w", "wf", "--workflow-id", "w3", "build"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stdout.contains("step \"step3\" is not built on its parent: "), "{}", refused.stdout);
    assert!(!paw.path("wf/.paw/logs/w3/step3.log").exists(), "packer never ran for step3");
    let images = emulator.tamper(&["count-named", "step3"]);
    assert_eq!(images, "2", "the images of w1 and w2 only");

    // The report's badges: the tampered parent fails, and so do its children; the first step verifies.
    let report = paw.run(&["-w", "wf", "--workflow-id", "w1", "report", "--json"]).success().json();
    let badge = |step: &str| {
        let step = report["steps"].as_array().unwrap().iter().find(|s| s["step_id"] == step).unwrap();
        step["images"][0]["provenance"]["badge"].as_str().unwrap().to_string()
    };
    assert_eq!([badge("step1"), badge("step2"), badge("step3")], ["verified", "failed", "failed"], "{report:#}");
}

fn ami_of(paw: &Paw, workflow_id: &str, step: &str) -> String {
    let args = ["-w", "wf", "--workflow-id", workflow_id, "images", "show", step, "--json"];
    paw.run(&args).success().json()["ami_id"].as_str().unwrap().to_string()
}

/// Copies have statements of their own, naming their original's: packer's (`ami_regions`) and
/// paw's (`images copy`); `paw verify` checks each, and names a copy tampered with. The key here
/// is RSA (RSASSA-PSS), checked outside paw too.
#[test]
fn each_copy_s_statement_names_its_original_s() {
    let emulator = Emulator::start();
    emulator.make_signing_key("alias/paw-provenance", "RSA_2048");
    let paw = emulator.configure(Paw::example("chain"));
    crate::regions::copy_step1_to_us_west_2(&paw);
    paw.edit(
        "wf/workflow_param.json",
        "\"workflow_id\":",
        "\"provenance\": {\"kms_key\": \"alias/paw-provenance\"},\n    \"workflow_id\":",
    );
    paw.run(&["-w", "wf", "build"]).success();
    paw.run(&["-w", "wf", "images", "copy", "step1", "--to-region", "eu-west-1"]).success();

    let (code, checked) = verify(&paw, &["step1", "--no-chain"]);
    assert_eq!(code, 0, "{checked:#?}");
    let json = paw.run(&["-w", "wf", "verify", "step1", "--json"]).success().json();
    let places: Vec<&str> = json.as_array().unwrap().iter().filter_map(|image| image["copy_in"].as_str()).collect();
    assert_eq!(places, ["eu-west-1", "us-west-2"], "{json:#}");
    let shown = paw.run(&["-w", "wf", "images", "show", "step1", "--json"]).success().json();
    let original = paw_core::provenance::sha256_hex(shown["provenance"].as_str().unwrap().as_bytes());
    for place in places {
        let envelope: paw_core::provenance::Envelope =
            serde_json::from_str(shown["copy_provenance"][place].as_str().unwrap()).unwrap();
        let statement = envelope.statement().unwrap();
        let named = paw_core::provenance::dependency_of(&statement, paw_core::provenance::ORIGINAL_DEPENDENCY);
        assert_eq!(named, Some((shown["ami_id"].as_str().unwrap().to_string(), Some(original.clone()))));
    }
    assert_eq!(verify(&paw, &["step3"]).0, 0, "the chain above the copied image");
    let export = paw.run(&["-w", "wf", "images", "provenance", "step3", "--json"]).success().json();
    let outside = verified_outside(&paw, &export);
    assert!(outside.status.success(), "RSA-PSS outside paw: {}", String::from_utf8_lossy(&outside.stderr));

    // A copy's tag changed by hand: that copy is named, the others verify.
    let west = shown["copies"]["us-west-2"].as_str().unwrap();
    emulator.tamper(&["tag", west, "paw:provenance", "0000", "us-west-2"]);
    let (code, checked) = verify(&paw, &["step1", "--no-chain"]);
    assert_eq!(code, 1);
    let failed: Vec<&(String, Vec<String>)> = checked.iter().filter(|(_, problems)| !problems.is_empty()).collect();
    assert_eq!(failed.len(), 1, "{checked:#?}");
    assert!(failed[0].1[0].starts_with("its paw:provenance tag says 0000"), "{checked:#?}");
    // A second copy run finds every copy done: nothing is copied again.
    let again =
        paw.run(&["-w", "wf", "--json", "images", "copy", "step1", "--to-region", "eu-west-1"]).success().json();
    assert_eq!(again[0]["result"], "already there", "{again:#}");
}
