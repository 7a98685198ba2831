//! `paw report`: the HTML page, opened in headless Chromium (Debian's package): its DOM text and a
//! screenshot.

use std::process::Command;

use crate::emulator::Emulator;
use crate::harness::{Paw, chromium};

/// Runs headless Chromium on the page with `args`; its standard output.
fn chromium_on(page: &std::path::Path, profile: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_report_shows_the_tree_statuses_lineage_and_channels_in_a_browser() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("chain"));
    paw.run(&["-w", "wf", "build"]).success();
    paw.write("wf/step3/notes.txt", "version two");
    paw.run(&["-w", "wf", "--workflow-id", "wf-two", "build"]).success();
    paw.run(&["-w", "wf", "channel", "set", "prod", "step3"]).success();
    paw.run(&["-w", "wf", "--workflow-id", "wf-two", "images", "revoke", "step3", "--reason", "broken app", "--yes"])
        .success();
    let show = |workflow: &str, step: &str| {
        paw.run(&["-w", "wf", "--workflow-id", workflow, "images", "show", step, "--json"]).success().json()["ami_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (step2, old_step3, new_step3) =
        (show("paw-2024-06-13-12-00-00", "step2"), show("paw-2024-06-13-12-00-00", "step3"), show("wf-two", "step3"));

    let page = paw.path("report.html");
    let run = paw.run(&["-w", "wf", "report", "--all-workflows", "--html", page.to_str().unwrap()]);
    assert!(run.success().stdout.contains("(3 steps, 6 images)"), "{}", run.stdout);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing is fetched.
    for fetch in ["<script", "<link", "@import", "url(", "src="] {
        assert!(!html.contains(fetch), "the page fetches something: {fetch}");
    }

    let dom = chromium_on(&page, &paw.path("chromium-profile"), &["--dump-dom"]);
    for expected in [
        "paw report: wf (paw-2024-06-13-12-00-00)",
        "3 steps, 6 images",
        "id=\"step-step3\"",
        &format!("id=\"img-{step2}\""),
        // Lineage: step3's images link to the step2 image they were built on.
        &format!("<a href=\"#img-{step2}\"><code>{step2}</code></a>"),
        "<span class=\"badge revoked\">revoked</span>",
        "broken app",
        // The first workflow's step3 is stale: its notes.txt changed.
        "<span class=\"badge stale\">stale</span>",
        "its inputs changed",
        "<span class=\"channel\">prod</span>",
        &format!("ImageDetails:imageId={old_step3}"),
        &new_step3,
    ] {
        assert!(dom.contains(expected), "the page has no {expected:?}:\n{dom}");
    }

    let screenshot = paw.path("report.png");
    chromium_on(
        &page,
        &paw.path("chromium-profile"),
        &["--window-size=1280,900", &format!("--screenshot={}", screenshot.display())],
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (width, height) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((width, height), (1280, 900));
    // A blank page compresses to a few hundred bytes; tables, badges and text do not.
    assert!(png.len() > 30_000, "the screenshot looks empty: {} bytes", png.len());

    // Without --html the page is the output; --json has the data.
    let stdout = paw.run(&["-w", "wf", "report"]).success().stdout.clone();
    assert!(stdout.starts_with("<!DOCTYPE html>") && stdout.contains("3 steps, 3 images"), "{stdout}");
    let data = paw.run(&["-w", "wf", "report", "--json"]).success().json();
    assert_eq!(data["image_count"], 3);
    assert_eq!(data["steps"][2]["images"][0]["status"], "stale");
}

/// Each image's test verdict is a badge, with the failed test, why, and its log.
#[test]
fn the_report_shows_each_images_test_verdict() {
    let emulator = Emulator::start();
    let paw = emulator.configure(Paw::example("fanout"));
    paw.run(&["-w", "wf", "build"]).success();
    paw.edit("wf/web/tests/image-env", "set -eu", "set -eu\necho 'port 80 is closed' >&2\nexit 1");
    assert_eq!(paw.run(&["-w", "wf", "test", "web"]).code, 1);
    let page = paw.path("report.html");
    paw.run(&["-w", "wf", "report", "--html", page.to_str().unwrap()]).success();
    let dom = chromium_on(&page, &paw.path("chromium-profile"), &["--dump-dom"]);
    let log =
        paw.run(&["-w", "wf", "images", "show", "web", "--json"]).success().json()["tests"][1]["results"][0]["log"]
            .as_str()
            .unwrap()
            .to_string();
    for expected in [
        "<span class=\"badge passed\">passed</span>",
        "<span class=\"badge failed\">failed</span>",
        "test <b>image-env</b>: exit status 1",
        "port 80 is closed",
        &format!("log: <code>{log}</code>"),
    ] {
        assert!(dom.contains(expected), "the page has no {expected:?}:\n{dom}");
    }
    let data = paw.run(&["-w", "wf", "report", "--json"]).success().json();
    let web = &data["steps"][2];
    assert_eq!(web["step_id"], "web");
    assert_eq!(web["images"][0]["tests"]["verdict"], "failed");
    assert_eq!(web["images"][0]["status"], "failed");
    assert_eq!(data["steps"][0]["images"][0]["tests"]["verdict"], "passed");
}
