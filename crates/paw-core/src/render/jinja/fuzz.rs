//! The fuzz test: thousands of generated templates, seeded, call every built-in filter, test and
//! global of Jinja2 (as tests/jinja/expected.json lists them), the Python methods paw knows and the
//! operators, with edge-case values and arguments (negative, zero, huge, wrong-typed, none,
//! undefined). Each render must end in its output or a clean error at the template's line:
//! never a panic, an abort or a runaway.

use std::path::Path;
use std::time::{Duration, Instant};

use minijinja::Value;

use crate::error::ErrorKind;
use crate::render::render_template_with;

const SEED: u64 = 0x5eed_f00d;
const CASES: usize = 6000;

/// Literals of every kind and edge: what Python treats specially, and sizes that would exhaust
/// memory if taken at their word.
const VALUES: [&str; 52] = [
    "none",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "2",
    "3",
    "-7",
    "36",
    "37",
    "80",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "10 ** 9",
    "10 ** 18",
    "0.0",
    "-0.0",
    "3.5",
    "-2.5",
    "1e300",
    "-1e300",
    "\"\"",
    "\"a\"",
    "\"abc\"",
    "\"é€\"",
    "\"  a b  \"",
    "\"10\"",
    "\"0x1A\"",
    "\"-12\"",
    "\"3.7\"",
    "\"nan\"",
    "\"inf\"",
    "\"%s%d\"",
    "\"{0}{}\"",
    "\"a,b\"",
    "\"xy\"",
    "[]",
    "[1, 2, 3]",
    "[3, 1, 2]",
    "[\"b\", \"A\", \"a\"]",
    "[[1], [2, 3]]",
    "[none]",
    "[{\"a\": 1}, {\"a\": 2}]",
    "{}",
    "{\"a\": 1, \"B\": 2}",
    "{\"a\": [1]}",
    "range(3)",
    "missing",
    "(\"a\", 1)",
    "namespace(a=1)",
];

/// Keyword names of Jinja2's filters and tests.
const KEYWORDS: [&str; 24] = [
    "width",
    "base",
    "default",
    "count",
    "attribute",
    "reverse",
    "case_sensitive",
    "fill_with",
    "linecount",
    "indent",
    "first",
    "blank",
    "length",
    "killwords",
    "end",
    "leeway",
    "precision",
    "method",
    "binary",
    "autospace",
    "target",
    "trim_url_limit",
    "by",
    "start",
];

/// Python methods on strings, lists and dicts: paw's own (jinja/mod.rs) and pycompat's.
const METHODS: [&str; 42] = [
    "center",
    "ljust",
    "rjust",
    "zfill",
    "title",
    "swapcase",
    "rsplit",
    "startswith",
    "endswith",
    "index",
    "rindex",
    "removeprefix",
    "removesuffix",
    "upper",
    "lower",
    "islower",
    "isupper",
    "isspace",
    "isdigit",
    "isnumeric",
    "isalnum",
    "isalpha",
    "isascii",
    "strip",
    "lstrip",
    "rstrip",
    "replace",
    "split",
    "splitlines",
    "capitalize",
    "count",
    "find",
    "rfind",
    "format",
    "join",
    "keys",
    "values",
    "items",
    "get",
    "encode",
    "append",
    "copy",
];

/// The values that broke paw before (negative, zero, huge, none, a string for a number).
const EXTREMES: [&str; 7] = ["-1", "0", "9223372036854775807", "10 ** 18", "none", "\"x\"", "2.5"];

const OPERATORS: [&str; 13] = ["+", "-", "*", "/", "//", "%", "**", "~", "in", "==", "<", "and", "or"];

/// splitmix64: a seeded generator, so every run makes the same cases.
pub(super) struct Random(pub(super) u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

pub(super) fn builtins(kind: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jinja/expected.json");
    let generated: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    generated["jinja2"][kind].as_array().unwrap().iter().map(|name| name.as_str().unwrap().to_string()).collect()
}

/// Up to three arguments, some of them by keyword: `(a, b, width=c)`.
fn arguments(random: &mut Random) -> String {
    let count = random.below(4);
    let arguments: Vec<String> = (0..count)
        .map(|_| match random.below(3) {
            0 => format!("{}={}", random.pick(&KEYWORDS), random.pick(&VALUES)),
            _ => random.pick(&VALUES).to_string(),
        })
        .collect();
    format!("({})", arguments.join(", "))
}

pub(super) fn case(random: &mut Random, filters: &[&str], tests: &[&str], globals: &[&str]) -> String {
    let value = random.pick(&VALUES);
    match random.below(7) {
        0 => format!("{{{{ {value} | {} }}}}", random.pick(filters)),
        1 | 2 => format!("{{{{ {value} | {}{} }}}}", random.pick(filters), arguments(random)),
        3 => format!("{{{{ {value} is {}{} }}}}", random.pick(tests), arguments(random)),
        4 => format!("{{{{ {value}.{}{} }}}}", random.pick(&METHODS), arguments(random)),
        5 => format!("{{{{ {value} {} {} }}}}", random.pick(&OPERATORS), random.pick(&VALUES)),
        _ => match random.below(3) {
            0 => format!("{{% for x in {value} %}}{{{{ x }}}},{{% endfor %}}"),
            1 => format!("{{% with a={value}, b=a %}}{{{{ b }}}}{{% endwith %}}"),
            _ => format!("{{{{ {}{} }}}}", random.pick(globals), arguments(random)),
        },
    }
}

pub(super) fn as_strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// Every filter and method with every value as its first argument, and every filter with every
/// keyword at every extreme: what random cases reach only by chance.
fn sweep(filters: &[&str]) -> Vec<String> {
    let mut cases = Vec::new();
    for (index, argument) in VALUES.iter().enumerate() {
        let subject = ["\"abc\"", "[1, 2]", "{\"a\": 1}"][index % 3];
        cases.extend(filters.iter().map(|filter| format!("{{{{ {subject} | {filter}({argument}) }}}}")));
        cases.extend(METHODS.iter().map(|method| format!("{{{{ {subject}.{method}({argument}) }}}}")));
        cases.extend(METHODS.iter().map(|method| format!("{{{{ \"é€\".{method}({argument}, \"-\") }}}}")));
    }
    for filter in filters {
        for keyword in KEYWORDS {
            cases.extend(EXTREMES.iter().map(|value| format!("{{{{ \"10\" | {filter}({keyword}={value}) }}}}")));
        }
    }
    cases
}

#[test]
fn no_template_crashes_or_runs_away() {
    let (filters, tests, globals) = (builtins("filters"), builtins("tests"), builtins("globals"));
    let (filters, tests, globals) = (as_strs(&filters), as_strs(&tests), as_strs(&globals));
    let mut random = Random(SEED);
    let mut cases = sweep(&filters);
    cases.extend((0..CASES).map(|_| case(&mut random, &filters, &tests, &globals)));
    let (mut rendered, mut refused) = (0, 0);
    let mut longest = (Duration::ZERO, String::new());
    let mut failures = Vec::new();
    for template in &cases {
        let started = Instant::now();
        let result = render_template_with(Path::new("fuzz.pkr.hcl"), template, Value::UNDEFINED);
        let took = started.elapsed();
        if took > longest.0 {
            longest = (took, template.clone());
        }
        match result {
            Ok(_) => rendered += 1,
            Err(err) if err.kind == ErrorKind::Template && err.location.as_ref().is_some_and(|at| at.line >= 1) => {
                refused += 1
            }
            Err(err) => failures.push(format!("{template}\n    {err}")),
        }
    }
    eprintln!(
        "fuzz: {} cases ({CASES} random, seed {SEED:#x}): {rendered} rendered, {refused} clean errors, {} crashes; longest render {:?}: {}",
        cases.len(),
        failures.len(),
        longest.0,
        longest.1
    );
    assert!(
        failures.is_empty(),
        "{} templates crashed paw or failed without a line:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // A runaway is what fuel stops; far below a CI job's patience even in a debug build.
    assert!(longest.0 < Duration::from_secs(10), "a render ran {:?}: {}", longest.0, longest.1);
}
