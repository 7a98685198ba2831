//! The differential test: generated templates (the fuzz test's generator, seeded) rendered by
//! Jinja2 itself (3.1, from the `.venv` that `scripts/setup` makes) and by paw. Where both render,
//! the output is the same; where Jinja2 raises, paw refuses; where paw refuses and Jinja2 renders,
//! the refusal is one of the README's documented differences. Failures are listed shortest first.
//! `PAW_JINJA_CASES` and `PAW_JINJA_SEED` run more cases, or others.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use minijinja::Value;

use super::fuzz::{Random, as_strs, builtins, case};
use crate::render::render_template_with;

const CASES: usize = 400;
const SEED: u64 = 0x0d1f_f5ee;

/// Renders each template of stdin's JSON list with Jinja2 (`jinja2.Template(text).render()`, as
/// the seed does), bounded in memory: one JSON line per template, its output or the exception's
/// type and message, written as soon as it is known.
const JINJA2: &str = r#"
import json, resource, sys
import jinja2
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
for text in json.load(sys.stdin):
    try:
        result = {"ok": jinja2.Template(text).render()}
    except BaseException as error:
        result = {"error": f"{type(error).__name__}: {error}"[:300]}
    print(json.dumps(result), flush=True)
"#;

/// How long Jinja2 may take for one template. Python cannot interrupt some work in C (a huge
/// integer's power), so a template past it (or one that ends the process) counts as Jinja2
/// failing, and the rest go to a new process.
const PER_TEMPLATE: Duration = Duration::from_secs(10);

const TIMED_OUT: &str = "took more than";

fn jinja2(templates: &[String]) -> Vec<Result<String, String>> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(python.exists(), "the differential test needs Jinja2 in .venv: run scripts/setup");
    let mut results = Vec::with_capacity(templates.len());
    while results.len() < templates.len() {
        let rest = &templates[results.len()..];
        let mut child = Command::new(&python)
            .args(["-c", JINJA2])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        let input = serde_json::to_vec(rest).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || stdin.write_all(&input));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || stdout.lines().map_while(Result::ok).try_for_each(|line| lines.send(line)));
        let before = results.len();
        while results.len() < templates.len() {
            match received.recv_timeout(PER_TEMPLATE) {
                Ok(line) => {
                    let result: serde_json::Value = serde_json::from_str(&line).unwrap();
                    results.push(match result["ok"].as_str() {
                        Some(text) => Ok(text.to_string()),
                        None => Err(result["error"].as_str().unwrap_or_default().to_string()),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    results.push(Err(format!("{TIMED_OUT} {PER_TEMPLATE:?}")));
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    assert!(
                        results.len() > before || before > 0,
                        "Jinja2's side failed: is .venv whole? run scripts/setup"
                    );
                    results.push(Err("Jinja2's process ended".to_string()));
                    break;
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    results
}

/// paw's refusals that the README lists as differences from the seed: an undefined value used,
/// and what paw does not support (`random`, `urlize`, `wordwrap`, integers beyond 128 bits, ...).
const DOCUMENTED: [&str; 3] = ["undefined", "paw does not support", "unknown method"];

/// Jinja2's output that no renderer can repeat: an object printed with its address (a generator,
/// an iterator, a cycler). paw prints the values, or refuses.
fn unrepeatable(output: &str) -> bool {
    output.contains(" at 0x")
}

#[test]
fn paw_renders_what_jinja2_renders_and_refuses_what_it_raises_on() {
    let number =
        |name: &str, default: u64| std::env::var(name).ok().and_then(|text| text.parse().ok()).unwrap_or(default);
    let (cases, seed) = (number("PAW_JINJA_CASES", CASES as u64) as usize, number("PAW_JINJA_SEED", SEED));
    let (filters, tests, globals) = (builtins("filters"), builtins("tests"), builtins("globals"));
    let (filters, tests, globals) = (as_strs(&filters), as_strs(&tests), as_strs(&globals));
    let mut random = Random(seed);
    let templates: Vec<String> = (0..cases).map(|_| case(&mut random, &filters, &tests, &globals)).collect();
    let expected = jinja2(&templates);
    let mut failures = Vec::new();
    for (template, jinja) in templates.iter().zip(expected) {
        let paw = render_template_with(Path::new("differential.pkr.hcl"), template, Value::UNDEFINED)
            .map_err(|err| err.to_string());
        let failure = match (&paw, &jinja) {
            (Ok(ours), Ok(theirs)) if ours == theirs => continue,
            (Err(_), Err(_)) => continue,
            (_, Ok(theirs)) if unrepeatable(theirs) => continue,
            // Work that Python would do for minutes (a power of ten to 2**63) has no answer to
            // compare; paw's fuel and size limits stop such work, or it is cheap for paw.
            (Ok(_), Err(theirs)) if theirs.starts_with(TIMED_OUT) => continue,
            (Err(ours), Ok(_)) if DOCUMENTED.iter().any(|said| ours.contains(said)) => continue,
            (Ok(ours), Ok(theirs)) => format!("paw prints {ours:?}, Jinja2 {theirs:?}"),
            (Ok(ours), Err(theirs)) => format!("paw prints {ours:?} where Jinja2 raises {theirs}"),
            (Err(ours), Ok(theirs)) => {
                format!("paw refuses ({}) where Jinja2 prints {theirs:?}", ours.replace('\n', " "))
            }
        };
        failures.push((template.clone(), failure));
    }
    failures.sort_by_key(|(template, _)| template.len());
    failures.dedup_by(|a, b| a.0 == b.0);
    let shown: Vec<String> =
        failures.iter().take(40).map(|(template, what)| format!("{template}\n    {what}")).collect();
    assert!(
        failures.is_empty(),
        "{} of {cases} cases (seed {seed:#x}) differ from Jinja2, shortest first:\n{}",
        failures.len(),
        shown.join("\n")
    );
}
