//! Snapshots of what the main commands print, as text and as `--json`, on the example chain
//! before and after its build: a change to any of them shows in review as a diff of
//! tests/snapshots/. AMI and snapshot ids, times and fingerprints are redacted.

use crate::emulator::Emulator;
use crate::harness::Paw;

fn redacted() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"ami-[0-9a-f]{8,17}", "ami-[id]");
    settings.add_filter(r"snap-[0-9a-f]{8,17}", "snap-[id]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2}|Z)?", "[time]");
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[fingerprint]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", "[time]");
    // A statement's envelope holds times, ids and base64 of them.
    settings.add_filter(r#""provenance": "(?:[^"\\]|\\.)*""#, r#""provenance": "[envelope]""#);
    settings.set_prepend_module_to_snapshot(false);
    settings
}

fn output(paw: &Paw, args: &[&str]) -> String {
    let run = paw.run(args);
    run.success();
    run.stdout
}

#[test]
fn the_main_commands_print_what_they_printed() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    redacted().bind(|| {
        insta::assert_snapshot!("steps", output(&paw, &["-w", "wf", "steps"]));
        insta::assert_snapshot!("plan_before_build", output(&paw, &["-w", "wf", "plan"]));
        insta::assert_snapshot!("plan_before_build_json", output(&paw, &["-w", "wf", "plan", "--json"]));
        output(&paw, &["-w", "wf", "build"]);
        insta::assert_snapshot!("plan_after_build", output(&paw, &["-w", "wf", "plan"]));
        insta::assert_snapshot!("images_list", output(&paw, &["-w", "wf", "images", "list"]));
        insta::assert_snapshot!("images_list_json", output(&paw, &["-w", "wf", "images", "list", "--json"]));
        insta::assert_snapshot!("status", output(&paw, &["-w", "wf", "status"]));
        insta::assert_snapshot!("status_json", output(&paw, &["-w", "wf", "status", "--json"]));
    });
}
