//! The bad-input corpus: each case breaks a copy of the example workflow in one way and expects a
//! non-zero exit, one specific message (with file and line where there is one), and no change to
//! the folder but the steps' rendered outputs.

use std::path::Path;

use crate::harness::{Paw, debug_form};

struct Case {
    name: &'static str,
    /// Breaks the workflow at `wf/`.
    setup: fn(&Paw),
    args: &'static [&'static str],
    code: i32,
    /// Every one of these must be in stderr.
    expect: &'static [&'static str],
}

const VALIDATE: &[&str] = &["-w", "wf", "validate"];
const STEPS: &[&str] = &["-w", "wf", "steps"];
const WP: &str = "wf/workflow_param.json";
const SP2: &str = "wf/step2/step_param.json";

fn replace_all(paw: &Paw, relative: &str, text: &str) {
    paw.write(relative, text);
}

fn many_tags(paw: &Paw) {
    let tags: Vec<String> = (0..45).map(|i| format!("\"team:tag{i}\": \"v\"")).collect();
    paw.edit(WP, "\"bus:team\": \"platform\",", &tags.join(", "));
}

const CASES: &[Case] = &[
    Case {
        name: "workflow_param.json: missing comma",
        setup: |p| {
            p.edit(WP, "\"region_name\": \"us-east-1\",", "\"region_name\": \"us-east-1\"");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json:7:5: invalid JSON: expected `,` or `}`"],
    },
    Case {
        name: "step_param.json: unterminated string",
        setup: |p| {
            p.edit(SP2, "\"step2\",", "\"step2,");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/step2/step_param.json:", "invalid JSON"],
    },
    Case {
        name: "workflow_param.json: ends early",
        setup: |p| replace_all(p, WP, "{\n  \"workflow_id\": \"w\",\n"),
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json:3:", "invalid JSON: EOF while parsing", "missing closing brace"],
    },
    Case {
        name: "unclosed block comment",
        setup: |p| {
            p.edit(WP, "// A key of our own", "/* A key of our own");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json:21:5: a /* comment */ is not closed"],
    },
    Case {
        name: "empty workflow_param.json",
        setup: |p| replace_all(p, WP, "  \n"),
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json: the file is empty; it must hold a JSON object"],
    },
    Case {
        name: "empty step_param.json",
        setup: |p| replace_all(p, SP2, ""),
        args: STEPS,
        code: 2,
        expect: &["wf/step2/step_param.json: the file is empty"],
    },
    Case {
        name: "workflow_param.json is not UTF-8",
        setup: |p| {
            std::fs::write(p.path(WP), b"{\"workflow_id\": \"\xff\xfe\"}").unwrap();
        },
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json: the file is not UTF-8 text"],
    },
    Case {
        name: "workflow_param.json holds a list",
        setup: |p| replace_all(p, WP, "[1, 2]"),
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json: the file must hold a JSON object ({ ... }), found a list"],
    },
    Case {
        name: "missing workflow_id",
        setup: |p| {
            p.edit(WP, "\"workflow_id\": \"paw-2024-06-13-12-00-00\",", "");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json: missing required key \"workflow_id\"", "help: add it"],
    },
    Case {
        name: "missing root_base_ami_name",
        setup: |p| {
            p.edit(WP, "\"root_base_ami_name\"", "\"root_base_ami_nam\"");
        },
        args: STEPS,
        code: 2,
        expect: &["missing required key \"root_base_ami_name\""],
    },
    Case {
        name: "root_base_ami_id is a number",
        setup: |p| {
            p.edit(WP, "\"ami-785db401\"", "785");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json:13:5: \"root_base_ami_id\" must be a string, found a number (785)"],
    },
    Case {
        name: "root_base_ami_id is not an AMI id",
        setup: |p| {
            p.edit(WP, "\"ami-785db401\"", "\"i-785db401\"");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json:13:5: \"root_base_ami_id\" is \"i-785db401\", not an AMI id"],
    },
    Case {
        name: "is_default_vpc is a boolean",
        setup: |p| {
            p.edit(WP, "\"is_default_vpc\": \"true\"", "\"is_default_vpc\": true");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json:8:5: \"is_default_vpc\" must be a string, found a boolean (true)"],
    },
    Case {
        name: "a tag value is a number",
        setup: |p| {
            p.edit(WP, "\"bus:team\": \"platform\"", "\"bus:team\": 7");
        },
        args: STEPS,
        code: 2,
        expect: &[
            "wf/workflow_param.json:15:5: \"aws_tags\".\"bus:team\" must be a string, found a number (7)",
            "help: quote the value: \"bus:team\": \"7\"",
        ],
    },
    Case {
        name: "aws_tags is a list",
        setup: |p| {
            p.edit(WP, "\"aws_tags\": {", "\"aws_tags\": [], \"x\": {");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/workflow_param.json:15:5: \"aws_tags\" must be a map of strings, found a list"],
    },
    Case {
        name: "step_id missing",
        setup: |p| {
            p.edit(SP2, "\"step_id\"", "\"stepid\"");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/step2/step_param.json: missing required key \"step_id\""],
    },
    Case {
        name: "step_id is a number",
        setup: |p| {
            p.edit(SP2, "\"step2\",", "2,");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/step2/step_param.json:2:5: \"step_id\" must be a string, found a number (2)"],
    },
    Case {
        name: "metadata is a string",
        setup: |p| {
            p.edit(SP2, "\"metadata\": {", "\"metadata\": \"x\", \"m\": {");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/step2/step_param.json:4:5: \"metadata\" must be a map ({ ... }), found a string"],
    },
    Case {
        name: "unknown parent",
        setup: |p| {
            p.edit(SP2, "\"previous_step_id\": \"step1\"", "\"previous_step_id\": \"stepX\"");
        },
        args: STEPS,
        code: 2,
        expect: &[
            "wf/step2/step_param.json:3:5: step \"step2\" names previous_step_id \"stepX\", which no step has",
            "use one of: step1, step2, step3",
        ],
    },
    Case {
        name: "a catalog that is not one",
        setup: |_| {},
        args: &["-w", "wf", "--catalog", "postgres:x", "steps"],
        code: 2,
        expect: &["'--catalog <URI>': \"postgres:x\" is not a catalog", "help: write sqlite:PATH"],
    },
    Case {
        name: "cycle",
        setup: |p| {
            p.edit("wf/step1/step_param.json", "\"previous_step_id\": null", "\"previous_step_id\": \"step3\"");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/step1/step_param.json:3:5: the steps form a cycle: step1 -> step3 -> step2 -> step1"],
    },
    Case {
        name: "duplicate step ids",
        setup: |p| {
            p.edit("wf/step3/step_param.json", "\"step3\"", "\"step2\"");
        },
        args: STEPS,
        code: 2,
        expect: &["duplicate step id \"step2\", also used by wf/step2/step_param.json"],
    },
    Case {
        name: "unsafe step id",
        setup: |p| {
            p.edit("wf/step3/step_param.json", "\"step3\"", "\"../evil\"");
        },
        args: STEPS,
        code: 2,
        expect: &["wf/step3/step_param.json:2:5: step id \"../evil\" is not a safe file-name component"],
    },
    Case {
        name: "template syntax error",
        setup: |p| {
            p.edit("wf/step2/templates/.pkr.hcl", "{%- endfor %}", "{%- endfor");
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step2/templates/.pkr.hcl:26: template syntax error"],
    },
    Case {
        name: "undefined name",
        setup: |p| {
            p.edit(
                "wf/step1/templates/.pkrvars.hcl",
                "builder.workflow_param.instance_type",
                "builder.workflow_param.instance_size",
            );
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step1/templates/.pkrvars.hcl:4: undefined name in `builder.workflow_param.instance_size`"],
    },
    Case {
        name: "Python's % on a string",
        setup: |p| {
            p.edit("wf/step2/templates/.pkr.hcl", "{{ package }}", "{{ \"%s\" % package }}");
        },
        args: VALIDATE,
        code: 2,
        expect: &[
            "wf/step2/templates/.pkr.hcl:24: paw does not support Python's `%` operator on strings",
            "help: use the format filter",
        ],
    },
    Case {
        name: "a Jinja2 filter paw refuses",
        setup: |p| {
            p.edit("wf/step3/templates/.pkr.hcl", "{{ builder.step_param.step_id }}", "{{ [1, 2] | random }}");
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step3/templates/.pkr.hcl:2: paw does not support Jinja2's `random` filter"],
    },
    // The slips that crashed paw (issue: no template can crash paw): each one error at its line.
    Case {
        name: "center with a negative width renders as Jinja2 does, and a huge one is refused",
        setup: |p| {
            p.edit(
                "wf/step3/templates/.pkr.hcl",
                "{{ builder.step_param.step_id }}",
                "{{ \"abc\" | center(-1) }}{{ \"é€\".center(9223372036854775807) }}",
            );
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step3/templates/.pkr.hcl:2: template error: center would make a value of", "limit is 64 MiB"],
    },
    Case {
        name: "int with a base Python refuses falls back as Jinja2's does; an integer past 128 bits is refused",
        setup: |p| {
            p.edit(
                "wf/step3/templates/.pkr.hcl",
                "{{ builder.step_param.step_id }}",
                "{{ \"10\" | int(base=1) }}{{ (\"9\" * 50) | int }}",
            );
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step3/templates/.pkr.hcl:2: paw does not support integers beyond 128 bits"],
    },
    Case {
        name: "a runaway slice",
        setup: |p| {
            p.edit(
                "wf/step3/templates/.pkr.hcl",
                "{{ builder.step_param.step_id }}",
                "{{ [[1]] | slice(10 ** 9) | list }}",
            );
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step3/templates/.pkr.hcl:2: the template does too much work"],
    },
    Case {
        name: "packer's own template syntax",
        setup: |p| {
            p.edit("wf/step3/templates/.pkr.hcl", "{{ builder.step_param.step_id }}", "web-{{timestamp}}");
        },
        args: VALIDATE,
        code: 2,
        expect: &[
            "wf/step3/templates/.pkr.hcl:2: packer's own template syntax",
            "help: wrap it in {% raw %}...{% endraw %}",
            "web-{% raw %}{{timestamp}}{% endraw %}",
        ],
    },
    Case {
        name: "bad HCL after rendering",
        setup: |p| {
            p.edit(
                "wf/step3/templates/.pkr.hcl",
                "  region        = var.aws_region",
                "  region        = = var.aws_region",
            );
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step3/step3.pkr.hcl:5:", "not valid HCL after rendering"],
    },
    Case {
        name: "a template that names its AMI itself",
        setup: |p| {
            p.edit(
                "wf/step2/templates/.pkr.hcl",
                "  ami_name      = var.output_ami_name",
                "  ami_name      = \"my-team-base-${formatdate(\"YYYYMMDD\", timestamp())}\"",
            );
        },
        args: VALIDATE,
        code: 2,
        expect: &[
            "wf/step2/step2.pkr.hcl:3:3: source \"amazon-ebs\" \"step2\" sets ami_name to `\"my-team-base-${formatdate(",
            "which is known only when packer runs",
            "help: paw names each step's AMI, and finds, records and cleans it up by that name",
        ],
    },
    Case {
        name: "packer rejects the template",
        setup: |p| {
            p.edit("wf/step2/templates/.pkr.hcl", "var.instance_type", "var.instance_flavour");
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step2: packer validate failed", "instance_flavour"],
    },
    Case {
        name: "required_plugins on packer 1.6",
        setup: |p| {
            p.edit(
                "wf/step1/templates/.pkr.hcl",
                "source \"amazon-ebs\"",
                "packer {\n  required_plugins {\n  }\n}\nsource \"amazon-ebs\"",
            );
        },
        args: VALIDATE,
        code: 2,
        expect: &[
            "`packer { required_plugins { ... } }` block, which packer 1.6.6 does not know",
            "use packer 1.7 or newer",
        ],
    },
    Case {
        name: "AMI name too long",
        setup: |p| {
            p.edit(WP, "paw-2024-06-13-12-00-00", &"x".repeat(60));
        },
        args: VALIDATE,
        code: 2,
        expect: &[
            "wf/workflow_param.json:14:5: step \"step1\": AMI name \"ubuntu/images/",
            "is 130 characters long; EC2 allows 3 to 128",
        ],
    },
    Case {
        name: "AMI name with a bad character",
        setup: |p| {
            p.edit(WP, "paw-2024-06-13-12-00-00", "paw:2024");
        },
        args: VALIDATE,
        code: 2,
        expect: &[
            "AMI name \"ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721/paw:2024/step1\" contains ':'",
        ],
    },
    Case {
        name: "too many tags",
        setup: many_tags,
        args: VALIDATE,
        code: 2,
        expect: &[
            "wf/workflow_param.json:15:5: step \"step1\": 58 tags on one AMI; EC2 allows at most 50",
            "paw adds 10 tags of its own",
        ],
    },
    Case {
        name: "tag value too long",
        setup: |p| {
            p.edit(WP, "\"platform\"", &format!("\"{}\"", "p".repeat(257)));
        },
        args: VALIDATE,
        code: 2,
        expect: &["the value of tag \"bus:team\" is 257 characters; EC2 allows at most 256"],
    },
    Case {
        name: "aws: tag key",
        setup: |p| {
            p.edit(WP, "\"bus:team\"", "\"aws:team\"");
        },
        args: VALIDATE,
        code: 2,
        expect: &["tag key \"aws:team\" starts with \"aws:\", which AWS reserves"],
    },
    Case {
        name: "templates is not a folder",
        setup: |p| {
            std::fs::remove_dir_all(p.path("wf/step2/templates")).unwrap();
            p.write("wf/step2/templates", "not a folder");
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step2/templates: step \"step2\" has no readable templates/ folder"],
    },
    Case {
        name: "template is not UTF-8",
        setup: |p| {
            std::fs::write(p.path("wf/step1/templates/.pkrvars.hcl"), b"\xff\xfe").unwrap();
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/step1/templates/.pkrvars.hcl: the file is not UTF-8 text"],
    },
    Case {
        name: "no workflow_param.json",
        setup: |p| {
            std::fs::remove_file(p.path(WP)).unwrap();
        },
        args: STEPS,
        code: 2,
        expect: &["no workflow_param.json in wf", "paw init"],
    },
    Case {
        name: "no steps",
        setup: |p| {
            for step in ["step1", "step2", "step3"] {
                std::fs::remove_file(p.path(&format!("wf/{step}/step_param.json"))).unwrap();
            }
        },
        args: STEPS,
        code: 2,
        expect: &["no steps: no sub-folder of wf holds a step_param.json"],
    },
    Case {
        name: "unknown step on the command line",
        setup: |_| {},
        args: &["-w", "wf", "render", "step9"],
        code: 2,
        expect: &["no step \"step9\" in this workflow", "the steps are: step1, step2, step3"],
    },
    Case {
        name: "no region",
        setup: |p| {
            p.edit(WP, "\"region_name\": \"us-east-1\",", "");
        },
        args: VALIDATE,
        code: 2,
        expect: &["wf/workflow_param.json: no AWS region is set", "AWS_REGION"],
    },
    Case {
        name: "half the static credentials",
        setup: |p| {
            p.edit(WP, "\"vpc_name\"", "\"aws_access_key_id\": \"AKIAEXAMPLE\", \"vpc_name\"");
        },
        args: STEPS,
        code: 2,
        expect: &["only one of aws_access_key_id / aws_secret_access_key is given"],
    },
    Case {
        name: "instance_types for a template without the variable",
        setup: |p| {
            p.edit("wf/step2/step_param.json", "\"metadata\"", "\"instance_types\": [\"t3.micro\"],\n    \"metadata\"");
            p.edit("wf/step2/templates/.pkr.hcl", "var.instance_type", "\"t2.micro\"");
            let block = "variable \"instance_type\" {\n  type        = string\n  description = \"The EC2 instance type of the build instance.\"\n}\n";
            p.edit("wf/step2/templates/.variables.pkr.hcl", block, "");
        },
        args: VALIDATE,
        code: 2,
        expect: &[
            "wf/step2/step_param.json:4:5: \"instance_types\" needs the step's templates to declare `variable \"instance_type\"`",
            "help: paw passes each type to packer as -var instance_type=",
        ],
    },
    Case {
        name: "init into a folder that is not empty",
        setup: |_| {},
        args: &["init", "wf"],
        code: 2,
        expect: &["wf: the folder is not empty"],
    },
];

/// A rendered output of a step: straight in `<workflow>/<step folder>/`.
fn is_rendered_output(path: &Path) -> bool {
    path.components().count() == 3 && paw_core::render::is_rendered_output(&path.file_name().unwrap().to_string_lossy())
}

#[test]
fn every_bad_input_gets_one_clear_error_and_changes_nothing() {
    assert!(CASES.len() >= 25);
    let mut failures = Vec::new();
    for case in CASES {
        let paw = Paw::example("chain");
        (case.setup)(&paw);
        let before = paw.snapshot();
        let run = paw.run(case.args);
        let after = paw.snapshot();
        let mut problems = Vec::new();
        if run.code != case.code {
            problems.push(format!("exit code {} instead of {}", run.code, case.code));
        }
        for expected in case.expect {
            if !run.stderr.contains(expected) {
                problems.push(format!("stderr lacks {expected:?}"));
            }
        }
        if let Some(slip) = debug_form(&run.stderr) {
            problems.push(format!("not words: {slip}"));
        }
        if run.stderr.lines().filter(|line| line.starts_with("error:")).count() != 1 || run.stderr.contains("panicked")
        {
            problems.push("stderr is not exactly one error".into());
        }
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|path| before.get(*path) != after.get(*path) && !is_rendered_output(path))
            .collect();
        if !changed.is_empty() {
            problems.push(format!("changed {changed:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n  stderr: {}", case.name, problems.join("; "), run.stderr.trim()));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}
