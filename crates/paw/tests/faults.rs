//! paw through a faulty network (tests/faults.py, between paw and the emulator): AWS throttling,
//! 500s, delays, connections dropped before or after the request was carried out, and new AMIs
//! unknown to DescribeImages for 2 s, over several seeds. After each round, asked of the emulator directly: no instance, key pair or security group
//! left, no AMI the catalog does not know, no record of an AMI that is gone, and a rerun without
//! faults that builds nothing again.

use std::path::Path;
use std::process::Child;

use crate::emulator::Emulator;
use crate::harness::{Paw, start_python_server};

/// The share of paw's requests that get a fault.
const RATE: &str = "0.3";

struct FaultyNetwork {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl FaultyNetwork {
    fn start(upstream: &str, seed: u32) -> FaultyNetwork {
        let log = tempfile::tempdir().unwrap();
        let log_path = log.path().join("faults.log");
        let seed = seed.to_string();
        let env = [
            ("FAULT_UPSTREAM", upstream),
            ("FAULT_SEED", seed.as_str()),
            ("FAULT_RATE", RATE),
            ("FAULT_LOG", log_path.to_str().unwrap()),
            ("FAULT_LAG", "2"),
        ];
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults.py");
        let (child, port, _port_dir) = start_python_server(&script, &env);
        FaultyNetwork { child, endpoint: format!("http://127.0.0.1:{port}"), dir: log }
    }

    /// The faults so far, one "kind service action" a line.
    fn faults(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("faults.log")).unwrap_or_default();
        log.lines().map(str::to_string).collect()
    }
}

impl Drop for FaultyNetwork {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round: the chain built through the faults, then checked; `catalog` is paw's `--catalog`.
fn round(seed: u32, catalog: Option<&str>) -> Vec<String> {
    let emulator = Emulator::start();
    let network = FaultyNetwork::start(&emulator.endpoint, seed);
    let paw = emulator.configure(Paw::example("chain"));
    let mut args = vec!["-w", "wf"];
    if let Some(catalog) = catalog {
        args.extend(["--catalog", catalog]);
    }
    let build = paw.run_with(&[("AWS_ENDPOINT_URL", &network.endpoint)], &[args.as_slice(), &["build"]].concat());
    let faults = network.faults();
    let context = format!("seed {seed}, faults: {faults:?}\n{}\n{}", build.stdout, build.stderr);
    assert_eq!(build.code, 0, "every call gets through in the end: the build finishes\n{context}");

    let ec2 = emulator.ec2();
    assert_eq!(ec2.live_instances(), Vec::<String>::new(), "{context}");
    assert_eq!(ec2.packer_key_pairs(), Vec::<String>::new(), "{context}");
    assert_eq!(ec2.packer_security_groups(), Vec::<String>::new(), "{context}");
    let records = paw.run(&[args.as_slice(), &["images", "list", "--json"]].concat()).success().json();
    let recorded: Vec<String> =
        records.as_array().unwrap().iter().map(|record| record["ami_id"].as_str().unwrap().to_string()).collect();
    let mut made: Vec<String> = ec2.own_images().into_iter().map(|(id, _)| id).collect();
    made.sort();
    let mut known = recorded.clone();
    known.sort();
    assert_eq!(made, known, "one AMI per step, each recorded, each there\n{context}");
    assert_eq!(recorded.len(), 3, "{context}");

    let rerun = paw.run(&[args.as_slice(), &["build", "--json"]].concat()).success().json();
    let outcomes: Vec<&str> = rerun.as_array().unwrap().iter().map(|step| step["result"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["up-to-date"; 3], "{context}");

    // The operations on images, through the faults too: each done once, as asked.
    let through = |more: &[&str]| {
        let run = paw.run_with(&[("AWS_ENDPOINT_URL", &network.endpoint)], &[args.as_slice(), more].concat());
        assert_eq!(run.code, 0, "{more:?}, seed {seed}, faults: {:?}\n{}", network.faults(), run.stderr);
    };
    through(&["channel", "set", "prod", "step3", "--ssm-parameter", "/paw/faults/prod"]);
    through(&["images", "revoke", "step2", "--reason", "CVE-1", "--yes"]);
    through(&["images", "restore", "step2"]);
    let history =
        paw.run(&[args.as_slice(), &["channel", "history", "prod", "step3", "--json"]].concat()).success().json();
    assert_eq!(history.as_array().unwrap().len(), 1, "one entry, though answers were lost: {history}");
    let step3 = recorded[0].clone();
    assert_eq!(emulator.ssm_parameter("/paw/faults/prod").as_deref(), Some(step3.as_str()));
    let records = paw.run(&[args.as_slice(), &["images", "list", "--json"]].concat()).success().json();
    assert!(records.as_array().unwrap().iter().all(|record| record["status"] == "available"), "{records}");
    network.faults()
}

#[test]
fn builds_through_throttles_errors_and_lost_answers_lose_and_leak_nothing() {
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 1..=4 {
        kinds.extend(round(seed, None).iter().map(|fault| fault.split(' ').next().unwrap().to_string()));
    }
    for seed in 5..=6 {
        let faults = round(seed, Some("dynamodb:paw-faults"));
        assert!(
            faults.iter().any(|fault| fault.contains(" dynamodb ")),
            "the catalog's calls get faults too: {faults:?}"
        );
        kinds.extend(faults.iter().map(|fault| fault.split(' ').next().unwrap().to_string()));
    }
    assert_eq!(kinds.len(), 6, "every kind of fault was met, and EC2's lag: {kinds:?}");
}
