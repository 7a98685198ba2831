//! The book (`docs/`): its command reference is what paw's command line says, and its command
//! examples run (trycmd): offline, or on a fresh emulator for a page marked `<!-- examples: emulator -->`.
//! `TRYCMD=overwrite` writes what the commands printed back into the pages, ids and times redacted.

use std::path::{Path, PathBuf};

use crate::emulator::Emulator;
use crate::harness::{Paw, copy_tree, examples_dir, packer};

const EMULATOR_MARK: &str = "<!-- examples: emulator -->";

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/src")
}

#[test]
fn the_command_reference_is_generated_from_the_command_line() {
    let generated = Paw::new().run(&["man", "--markdown"]).success().stdout.clone();
    let path = docs_dir().join("reference/commands.md");
    if std::env::var_os("PAW_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == generated,
        "docs/src/reference/commands.md is not what `paw man --markdown` prints: \
         run `PAW_UPDATE_DOCS=1 cargo test -p paw --test integration command_reference` and commit it"
    );
    for command in ["build", "plan", "images delete", "lifecycle apply", "channel set"] {
        assert!(generated.contains(&format!("## `paw {command}`")), "the reference has paw {command}");
    }
}

/// Every page of the book with command examples, and whether they need the emulator.
fn pages_with_examples() -> Vec<(PathBuf, bool)> {
    let mut pages = Vec::new();
    collect_pages(&docs_dir(), &mut pages);
    pages.sort();
    pages
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            text.contains("```console").then(|| (path, text.contains(EMULATOR_MARK)))
        })
        .collect()
}

fn collect_pages(dir: &Path, pages: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            collect_pages(&path, pages);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            pages.push(path);
        }
    }
}

#[test]
fn the_books_examples_are_many() {
    let commands: usize = pages_with_examples()
        .iter()
        .map(|(path, _)| {
            std::fs::read_to_string(path).unwrap().lines().filter(|line| line.starts_with("$ paw ")).count()
        })
        .sum();
    assert!(commands >= 30, "the book has {commands} command examples; it documents paw by at least 30");
}

#[test]
fn the_books_examples_run_offline() {
    let pages: Vec<PathBuf> =
        pages_with_examples().into_iter().filter(|(_, emulator)| !emulator).map(|(path, _)| path).collect();
    assert!(!pages.is_empty(), "the book has offline examples");
    // Any AWS call fails at once: an offline example that needs AWS is a wrong page.
    run_examples(&pages, &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into())]);
}

#[test]
fn the_books_examples_run_on_the_emulator() {
    let pages: Vec<PathBuf> =
        pages_with_examples().into_iter().filter(|(_, emulator)| *emulator).map(|(path, _)| path).collect();
    assert!(!pages.is_empty(), "the book has examples on the emulator");
    for page in pages {
        let emulator = Emulator::start();
        run_examples(
            &[page],
            &[
                ("AWS_ENDPOINT_URL", emulator.endpoint.clone()),
                ("AWS_ACCESS_KEY_ID", "testing".into()),
                ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ],
        );
    }
}

/// Runs `pages`' examples, each page in a folder of its own holding a copy of `examples/`, and,
/// under `TRYCMD=overwrite`, writes the pages back with what differs between runs redacted.
fn run_examples(pages: &[PathBuf], env: &[(&str, String)]) {
    let cases = tempfile::tempdir().unwrap();
    let copies: Vec<(PathBuf, PathBuf)> = pages
        .iter()
        .map(|page| {
            let relative = page.strip_prefix(docs_dir()).unwrap();
            let name = relative.to_string_lossy().replace(['/', '\\'], "-");
            let copy = cases.path().join(&name);
            std::fs::copy(page, &copy).unwrap();
            copy_tree(&examples_dir(), &copy.with_extension("in").join("examples"));
            (page.clone(), copy)
        })
        .collect();
    let nowhere = cases.path().join("none");
    let test_cases = trycmd::TestCases::new();
    test_cases
        .register_bin("paw", assert_cmd::cargo::cargo_bin!("paw"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", nowhere.to_string_lossy())
        .env("AWS_SHARED_CREDENTIALS_FILE", nowhere.to_string_lossy())
        .env("AWS_REGION", "us-east-1")
        .env("PAW_PACKER", packer().to_string_lossy())
        .env("PAW_CI", "none")
        .env("NO_COLOR", "1");
    for (key, value) in env {
        test_cases.env(*key, value);
    }
    for (_, copy) in &copies {
        test_cases.case(copy);
    }
    test_cases.run();
    if std::env::var("TRYCMD").is_ok_and(|mode| mode == "overwrite") {
        for (page, copy) in &copies {
            std::fs::write(page, redacted(&std::fs::read_to_string(copy).unwrap())).unwrap();
        }
    }
}

/// `text` with ids, digests, times and who ran it, which differ between runs and machines, written
/// as trycmd's `[..]`; the commands themselves (`$ ` lines) stay as written.
fn redacted(text: &str) -> String {
    let patterns = [
        (r"\b(ami|snap|i|vol|vpc|subnet|sg|lt)-[0-9a-f]{8,17}\b", "[..]"),
        (r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d{4}|Z)?", "[..]"),
        (r"\b\d+\.\d s\b", "[..]"),
        // A date alone, as a table's column has it (not inside a workflow id such as paw-2024-06-13-…).
        (r"(\s)\d{4}-\d\d-\d\d(\s)", "${1}[..]${2}"),
        (r"\b[0-9]*[a-f][0-9a-f]{11,63}\b", "[..]"),
        (r"[\w.-]+@[\w.-]+ \(arn:", "[..] (arn:"),
    ];
    let patterns: Vec<(regex_lite::Regex, &str)> =
        patterns.iter().map(|(pattern, with)| (regex_lite::Regex::new(pattern).unwrap(), *with)).collect();
    let lines = text.split_inclusive('\n').map(|line| {
        if line.starts_with("$ ") {
            return line.to_string();
        }
        patterns.iter().fold(line.to_string(), |line, (pattern, with)| pattern.replace_all(&line, *with).into_owned())
    });
    lines.collect()
}
