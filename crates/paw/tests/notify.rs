//! Notices: what a build, a channel move and `paw notify test` tell an EventBridge bus (through a
//! rule, into an SQS queue) and webhooks (a receiver on loopback), and what a dead one costs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::ci::{check_ci, schema};
use crate::emulator::Emulator;
use crate::harness::{Paw, start_python_server};

const SECRET: &str = "s3cret-never-printed";

/// A webhook receiver (tests/webhook_receiver.py): stopped when dropped.
struct Receiver {
    child: std::process::Child,
    port: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start(mode: &str, secret: Option<&str>) -> Receiver {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("received.jsonl");
        let mut env = vec![("RECEIVED", log.to_str().unwrap()), ("MODE", mode)];
        env.extend(secret.map(|secret| ("SECRET", secret)));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhook_receiver.py");
        let (child, port, _port_dir) = start_python_server(&script, &env);
        Receiver { child, port, log, _dir: log_dir }
    }

    /// Every request received: its path, body and whether its signature was right.
    fn received(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tests/event_queue.py against the emulator.
fn event_queue(emulator: &Emulator, args: &[&str]) -> String {
    emulator.helper("event_queue.py", args)
}

/// The events the rule put in the queue since the last call: (detail-type, detail).
fn queued(emulator: &Emulator, queue: &str) -> Vec<(String, Value)> {
    let events: Value = serde_json::from_str(&event_queue(emulator, &["receive", queue])).unwrap();
    let events = events.as_array().unwrap().iter();
    events.map(|event| (event["detail-type"].as_str().unwrap().to_string(), event["detail"].clone())).collect()
}

/// Every detail is an event record of schema/events-v1.json.
fn check_details(paw: &Paw, details: &[&Value]) {
    let file = paw.path("details.jsonl");
    std::fs::write(&file, details.iter().map(|detail| format!("{detail}\n")).collect::<String>()).unwrap();
    check_ci(&["events", schema().to_str().unwrap(), file.to_str().unwrap()]);
}

fn set_notify(paw: &Paw, notify: &str) {
    paw.edit("wf/workflow_param.json", "\"workflow_id\":", &format!("\"notify\": {notify},\n    \"workflow_id\":"));
}

#[test]
fn a_build_and_a_channel_move_reach_eventbridge_and_a_signed_webhook() {
    let emulator = Emulator::start();
    let queue = event_queue(&emulator, &["create", "paw-events"]);
    let receiver = Receiver::start("ok", Some(SECRET));
    let paw = emulator.configure(Paw::example("chain")).env("PAW_TEST_WEBHOOK_SECRET", SECRET);
    let webhook = format!("http://127.0.0.1:{}/hooks/paw?token=abc", receiver.port);
    set_notify(
        &paw,
        &format!(
            r#"[{{"eventbridge_bus": "default"}}, {{"webhook": "{webhook}", "secret_env": "PAW_TEST_WEBHOOK_SECRET"}}]"#
        ),
    );

    let build = paw.run(&["-w", "wf", "build", "--events", "jsonl"]);
    build.success();
    assert!(!build.stdout.contains(SECRET) && !build.stderr.contains(SECRET), "the secret is never printed");
    let summary: Value = serde_json::from_str(build.stdout.lines().last().unwrap()).unwrap();
    let deliveries: Vec<(&str, u64, u64)> = summary["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["target"].as_str().unwrap(), d["delivered"].as_u64().unwrap(), d["failed"].as_u64().unwrap()))
        .collect();
    let origin = format!("webhook:http://127.0.0.1:{}", receiver.port);
    assert_eq!(deliveries, [("eventbridge:default", 3, 0), (origin.as_str(), 3, 0)], "{summary:#}");

    let records = paw.run(&["-w", "wf", "images", "list", "--json"]).success().json();
    let ami = |step: &str| {
        let record = records.as_array().unwrap().iter().find(|record| record["step_id"] == step).unwrap();
        record["ami_id"].as_str().unwrap().to_string()
    };
    let events = queued(&emulator, &queue);
    let mut built: Vec<(&str, &str, String)> = events
        .iter()
        .map(|(kind, detail)| {
            (kind.as_str(), detail["step"].as_str().unwrap(), detail["ami_id"].as_str().unwrap().to_string())
        })
        .collect();
    built.sort();
    let expected: Vec<(&str, &str, String)> =
        ["step1", "step2", "step3"].iter().map(|step| ("paw.image.built", *step, ami(step))).collect();
    assert_eq!(built, expected, "{events:#?}");
    let detail = &events[0].1;
    assert_eq!(
        (&detail["workflow_name"], &detail["region"], &detail["type"]),
        (&"wf".into(), &"us-east-1".into(), &"built".into())
    );
    check_details(&paw, &events.iter().map(|(_, detail)| detail).collect::<Vec<_>>());

    let posts = receiver.received();
    assert_eq!(posts.len(), 3, "{posts:#?}");
    for post in &posts {
        assert_eq!(post["path"], "/hooks/paw?token=abc");
        assert_eq!(post["signature_ok"], true, "signed with the secret: {post:#}");
        assert_eq!((&post["body"]["source"], &post["body"]["detail-type"]), (&"paw".into(), &"paw.image.built".into()));
    }

    // A channel moves: the bus and the webhook hear of it.
    paw.run(&["-w", "wf", "channel", "set", "prod", "step3", "--reason", "release"]).success();
    let moved = queued(&emulator, &queue);
    assert_eq!(moved.len(), 1, "{moved:#?}");
    let (kind, detail) = &moved[0];
    assert_eq!(kind, "paw.channel.moved");
    assert_eq!(
        (&detail["channel"], &detail["step"], &detail["ami_id"]),
        (&"prod".into(), &"step3".into(), &ami("step3").into())
    );
    check_details(&paw, &[detail]);
    let posts = receiver.received();
    assert_eq!(posts.len(), 4);
    assert_eq!(
        (&posts[3]["body"]["detail-type"], &posts[3]["signature_ok"]),
        (&"paw.channel.moved".into(), &true.into())
    );

    // `paw notify test`: one sample to each.
    let tested = paw.run(&["-w", "wf", "notify", "test", "--json"]).success().json();
    assert_eq!(tested.as_array().unwrap().iter().map(|d| d["delivered"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 1]);
    assert_eq!(queued(&emulator, &queue)[0].0, "paw.notify.test");
    assert_eq!(receiver.received().len(), 5);
}

#[test]
fn a_dead_webhook_costs_seconds_is_reported_and_fails_nothing() {
    let emulator = Emulator::start();
    let dead = Receiver::start("hang", None);
    let paw = emulator.configure(Paw::example("chain"));
    // One that never answers, one that refuses the connection.
    set_notify(
        &paw,
        &format!(
            r#"[{{"webhook": "http://127.0.0.1:{}/"}}, {{"webhook": "http://127.0.0.1:9/", "format": "slack"}}]"#,
            dead.port
        ),
    );
    let build = paw.run(&["-w", "wf", "build", "--events", "jsonl"]);
    build.success();
    let summary: Value = serde_json::from_str(build.stdout.lines().last().unwrap()).unwrap();
    let deliveries = summary["notifications"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{summary:#}");
    for delivery in deliveries {
        assert_eq!(delivery["delivered"], 0, "{delivery:#}");
        assert!(delivery["error"].is_string(), "{delivery:#}");
        assert!(delivery["seconds"].as_f64().unwrap() <= 10.0, "a dead webhook costs at most 10 s: {delivery:#}");
    }
    assert!(
        build.stderr.contains(&format!("notification to webhook:http://127.0.0.1:{} failed", dead.port)),
        "{}",
        build.stderr
    );
    assert!(build.stderr.contains("3 built, 0 reused"), "{}", build.stderr);

    let tested = paw.run(&["-w", "wf", "notify", "test"]);
    assert_eq!(tested.code, 1, "{}", tested.stderr);
    assert!(tested.stdout.contains("FAILED: cannot connect"), "{}", tested.stdout);

    // A secret named and not set stops the build before anything runs.
    paw.write(
        "wf/workflow_param.json",
        &paw.read("wf/workflow_param.json").replace(r#""format": "slack""#, r#""secret_env": "PAW_UNSET_SECRET""#),
    );
    let refused = paw.run(&["-w", "wf", "--workflow-id", "other", "build"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the webhook's secret_env PAW_UNSET_SECRET is not set in the environment"),
        "{}",
        refused.stderr
    );
    assert!(!paw.path("wf/.paw/logs/other").exists(), "nothing built");
}
