//! What works with no AWS at all: steps, render, validate (with the real packer), init.

use crate::harness::Paw;

#[test]
fn steps_lists_the_chain_in_build_order() {
    let paw = Paw::example("chain");
    let run = paw.run(&["-w", "wf", "steps", "--json"]);
    let steps = run.success().json();
    let ids: Vec<_> = steps.as_array().unwrap().iter().map(|s| s["step_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["step1", "step2", "step3"]);
    assert_eq!(steps[1]["previous_step_id"], "step1");
    assert_eq!(steps[0]["metadata"]["what_is_included"], "the Python runtime");
    let table = paw.run(&["steps", "-w", "wf"]);
    assert!(table.success().stdout.contains("step2   step1"), "{}", table.stdout);
}

#[test]
fn render_writes_outputs_and_removes_stale_ones() {
    let paw = Paw::example("chain");
    paw.write("wf/step1/stale.pkr.hcl", "old");
    paw.write("wf/step1/keep.txt", "mine");
    paw.run(&["-w", "wf", "render", "step1"]).success();
    assert!(!paw.path("wf/step1/stale.pkr.hcl").exists());
    assert_eq!(paw.read("wf/step1/keep.txt"), "mine");
    let vars = paw.read("wf/step1/step1.pkrvars.hcl");
    assert!(vars.contains(r#"source_ami_id = "ami-785db401""#), "{vars}");
    assert!(vars.contains(r#"output_ami_name = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721/paw-2024-06-13-12-00-00/step1""#));
    assert!(vars.contains(r#"aws_region = "us-east-1""#));
    let template = paw.read("wf/step1/step1.pkr.hcl");
    assert!(template.contains(r#""echo 'installing python3-pip'","#), "{template}");
    assert!(paw.path("wf/step1/step1.variables.pkr.hcl").is_file());
    // Only the named step was rendered.
    assert!(!paw.path("wf/step2/step2.pkr.hcl").exists());
}

#[test]
fn a_step_whose_parent_has_no_ami_renders_with_a_placeholder() {
    let paw = Paw::example("chain");
    let run = paw.run(&["-w", "wf", "render", "--json"]);
    let report = run.success().json();
    assert_eq!(report[1]["source_ami_id"], "ami-00000000000000000");
    assert!(paw.read("wf/step2/step2.pkrvars.hcl").contains(r#"source_ami_id = "ami-00000000000000000""#));
}

/// The seed's idiom: a key only some steps set guards a provisioner. Jinja2 treats the missing key
/// as false; so does paw, and the workflow validates with the real packer.
#[test]
fn a_key_only_some_steps_set_can_guard_a_block() {
    let paw = Paw::example("chain");
    let guard = "  provisioner \"shell-local\" {\n    inline = [";
    let guarded = "{%- if builder.step_param.metadata.run_script %}\n  provisioner \"shell-local\" {\n                       script = \"{{ builder.step_param.metadata.run_script }}\"\n  }\n{%- endif %}\n";
    for step in ["step1", "step2"] {
        paw.edit(&format!("wf/{step}/templates/.pkr.hcl"), guard, &format!("{guarded}{guard}"));
    }
    paw.edit("wf/step2/step_param.json", "\"metadata\": {", "\"metadata\": {\n        \"run_script\": \"setup.sh\",");
    paw.write("wf/step2/setup.sh", "#!/bin/sh\necho setup\n");
    paw.run(&["-w", "wf", "validate"]).success();
    assert!(!paw.read("wf/step1/step1.pkr.hcl").contains("script ="));
    assert!(paw.read("wf/step2/step2.pkr.hcl").contains("    script = \"setup.sh\"\n  }\n  provisioner"));
}

#[test]
fn validate_runs_the_real_packer_on_every_step() {
    let paw = Paw::example("chain");
    let run = paw.run(&["validate", "-w", "wf"]);
    run.success();
    for step in ["step1", "step2", "step3"] {
        assert!(
            run.stdout.contains(&format!("{step}: 3 files rendered, HCL ok, packer validate ok (packer 1.6.6)")),
            "{}",
            run.stdout
        );
    }
    let json = paw.run(&["validate", "-w", "wf", "--json", "step3"]).success().json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["packer"], "ok");
}

#[test]
fn validate_without_packer_says_the_check_was_skipped() {
    let paw = Paw::example("chain").env("PAW_PACKER", "").env("PATH", "/nonexistent");
    let run = paw.run(&["-w", "wf", "validate"]);
    run.success();
    assert!(run.stdout.contains("step1: 3 files rendered, HCL ok, packer validate skipped"), "{}", run.stdout);
    assert!(run.stderr.contains("the packer check was skipped: no packer found"), "{}", run.stderr);
}

#[test]
fn required_plugins_make_paw_run_packer_init_first_on_packer_1_7_and_later() {
    // A stand-in packer that reports 1.9.0 and logs its arguments: this checks paw's invocation only;
    // the real packer's init needs the network.
    let paw = Paw::example("chain");
    let log = paw.path("packer.log");
    paw.write(
        "fake-packer",
        &format!(
            "#!/bin/sh\nif [ \"$1\" = version ]; then echo 'Packer v1.9.0'; exit 0; fi\necho \"$@\" >> {}\n",
            log.display()
        ),
    );
    std::fs::set_permissions(paw.path("fake-packer"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    paw.edit(
        "wf/step1/templates/.pkr.hcl",
        "source \"amazon-ebs\"",
        "packer {\n  required_plugins {\n    amazon = {\n      source  = \"github.com/hashicorp/amazon\"\n      version = \"~> 1\"\n    }\n  }\n}\n\nsource \"amazon-ebs\"",
    );
    let fake = paw.path("fake-packer").display().to_string();
    let paw = paw.env("PAW_PACKER", fake);
    paw.run(&["-w", "wf", "validate", "step1", "step2"]).success();
    assert_eq!(
        paw.read("packer.log"),
        "init .\nvalidate -var-file=step1.pkrvars.hcl .\nvalidate -var-file=step2.pkrvars.hcl .\n"
    );
}

#[test]
fn init_scaffolds_a_workflow_that_validates_straight_away() {
    let paw = Paw::new();
    let run = paw.run(&["init", "fresh"]);
    assert!(run.success().stdout.contains("created fresh/step1/templates/.pkr.hcl"), "{}", run.stdout);
    let run = paw.run(&["-w", "fresh", "validate"]);
    assert!(run.success().stdout.contains("step1: 3 files rendered, HCL ok, packer validate ok"), "{}", run.stdout);
    assert!(paw.read("fresh/.gitignore").contains(".paw/"));
    assert!(paw.read("fresh/step1/.gitignore").contains("/*.pkr.hcl"));
}

#[test]
fn the_default_workflow_is_the_current_folder_or_workflow() {
    let paw = Paw::example("chain").cwd("wf");
    paw.run(&["steps"]).success();
    let paw = Paw::new();
    paw.run(&["init", "workflow"]).success();
    let run = paw.run(&["steps", "--json"]);
    assert_eq!(run.success().json()[0]["folder"], "workflow/step1");
}

#[test]
fn the_region_comes_from_the_environment_when_the_params_have_none() {
    let paw = Paw::example("chain");
    paw.edit("wf/workflow_param.json", "\"region_name\": \"us-east-1\",", "");
    let paw = paw.env("AWS_REGION", "ap-southeast-2");
    paw.run(&["-w", "wf", "render", "step1"]).success();
    assert!(paw.read("wf/step1/step1.pkrvars.hcl").contains(r#"aws_region = "ap-southeast-2""#));
}

#[test]
fn completions_load_in_bash_and_the_man_page_names_every_command() {
    let paw = Paw::new();
    let run = paw.run(&["completions", "bash"]);
    paw.write("paw.bash", &run.success().stdout);
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p paw", paw.path("paw.bash").display()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("-F _paw paw"), "{output:?}");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let run = paw.run(&["completions", shell]);
        assert!(run.success().stdout.contains("doctor"), "{shell}: {}", run.stdout);
    }
    let man = paw.run(&["man"]);
    assert!(
        man.success().stdout.starts_with(".ie \\n(.g .ds Aq \\(aq"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains(".TH paw 1"), "{}", man.stdout);
    for command in ["build", "plan", "images", "doctor", "completions"] {
        assert!(man.stdout.contains(command), "{command}");
    }
}

/// A lease TTL that is not a number stops `paw build` before anything runs, with one error.
#[test]
fn a_bad_lease_ttl_is_one_error_before_anything_runs() {
    let paw = Paw::example("chain").env("PAW_LEASE_TTL", "abc");
    let before = paw.snapshot();
    let run = paw.run(&["-w", "wf", "build"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("PAW_LEASE_TTL=abc is not a number of seconds (3 or more)"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "no step started: {}", run.stdout);
    assert_eq!(paw.snapshot(), before);
}

/// A report that cannot be written names the file asked for, and leaves nothing beside it. (Its
/// place is a folder: the page is written beside it, and the rename fails.)
#[test]
fn a_report_that_cannot_be_written_names_its_file() {
    let paw = Paw::example("chain");
    paw.write("out/keep.txt", "mine");
    let names = || {
        let mut names: Vec<_> =
            std::fs::read_dir(paw.path("")).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        names.sort();
        names
    };
    let before = names();
    let run = paw.run(&["-w", "wf", "report", "--html", "out"]);
    assert_eq!(run.code, 1, "a file that cannot be written fails the run (1)");
    assert!(run.stderr.contains("error: out: cannot write"), "{}", run.stderr);
    assert_eq!(names(), before, "nothing left beside it");
    assert_eq!(paw.read("out/keep.txt"), "mine");
}

/// `paw --version` names the commit it was built from.
#[test]
fn the_version_names_the_commit() {
    let run = Paw::new().run(&["--version"]);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(run.success().stdout, format!("paw {} ({})\n", env!("CARGO_PKG_VERSION"), head.trim()));
}

/// A plain Packer project, as teams have them: its own AMI name, a fixed source AMI, packer's
/// `{{ }}`, a script beside it. Made for the emulator (no SSH, its endpoint).
const PACKER_PROJECT: &str = r#"variable "endpoint" {
  type    = string
  default = env("AWS_ENDPOINT_URL")
}

source "amazon-ebs" "web" {
  ami_name      = "web-app-${formatdate("YYYYMMDDhhmm", timestamp())}"
  instance_type = "t2.micro"
  region        = "us-east-1"
  source_ami    = "ami-785db401"

  custom_endpoint_ec2        = var.endpoint
  communicator               = "none"
  skip_credential_validation = true
  skip_region_validation     = true
}

build {
  sources = ["source.amazon-ebs.web"]

  provisioner "shell-local" {
    execute_command = ["/bin/sh", "-c", "{{.Vars}} {{.Script}}"]
    script          = "scripts/setup.sh"
  }
}
"#;

pub fn write_packer_project(paw: &Paw) {
    paw.write("web-app/main.pkr.hcl", PACKER_PROJECT);
    paw.write("web-app/scripts/setup.sh", "#!/bin/sh\necho 'setting the web app up'\n");
    let script = paw.path("web-app/scripts/setup.sh");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// `paw import` turns the project into a one-step workflow and says what it changed; the project
/// is not touched; a folder that is no project, or a folder that is not empty, is refused.
#[test]
fn import_makes_a_workflow_of_a_plain_packer_project() {
    let paw = Paw::new();
    write_packer_project(&paw);
    let run = paw.run(&["import", "web-app", "--into", "wf"]);
    let out = &run.success().stdout;
    for said in [
        "created wf with one step, web-app:",
        "main.pkr.hcl:7: `ami_name      = \"web-app-${formatdate(",
        "→ `ami_name = var.output_ami_name`",
        "main.pkr.hcl:10: `source_ami    = \"ami-785db401\"` → `source_ami = var.source_ami_id`",
        "main.pkr.hcl:22: packer's {{ }} wrapped in {% raw %}",
        "left to do: workflow_param.json's root_base_ami_name is a stand-in",
    ] {
        assert!(out.contains(said), "{said}: {out}");
    }
    let template = paw.read("wf/web-app/templates/.main.pkr.hcl");
    assert!(template.contains("  ami_name      = var.output_ami_name\n"), "{template}");
    assert!(template.contains("\"{% raw %}{{.Vars}}{% endraw %} {% raw %}{{.Script}}{% endraw %}\""), "{template}");
    assert_eq!(paw.read("web-app/main.pkr.hcl"), PACKER_PROJECT, "the project is not changed");
    let param: serde_json::Value = serde_json::from_str(&paw.read("wf/workflow_param.json")).unwrap();
    assert_eq!(
        (param["root_base_ami_id"].as_str(), param["region_name"].as_str()),
        (Some("ami-785db401"), Some("us-east-1"))
    );
    paw.run(&["-w", "wf", "validate"]).success();

    let again = paw.run(&["import", "web-app", "--into", "wf"]);
    assert!(again.code == 2 && again.stderr.contains("the folder is not empty"), "{}", again.stderr);
    let none = paw.run(&["import", "wf/web-app/scripts", "--into", "other"]);
    assert!(none.code == 2 && none.stderr.contains("no *.pkr.hcl file"), "{}", none.stderr);
    assert!(!paw.path("other").exists());
}

#[test]
fn a_reader_that_stops_reading_is_no_crash() {
    let mut child = Paw::new()
        .command(&["man", "--markdown"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Quiet where nothing is wrong: on a new workflow, whose catalog does not exist yet, the commands
/// that only read write nothing to stderr, so that `2>&1` into a JSON reader stays JSON; and
/// steps, render and plan create no catalog.
#[test]
fn reading_commands_on_a_new_workflow_write_nothing_to_stderr() {
    let paw = Paw::example("chain");
    let quiet = |args: &[&str]| {
        let run = paw.run(&[&["-w", "wf"][..], args].concat());
        assert_eq!(run.code, 0, "paw {args:?}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "paw {args:?} wrote to stderr: {}", run.stderr);
    };
    for args in [&["steps"][..], &["render"], &["plan"], &["--json", "plan"]] {
        quiet(args);
    }
    assert!(!paw.path("wf/.paw/catalog.sqlite").exists(), "reading creates no catalog");
    for args in [&["images", "list"][..], &["--json", "channel", "list"]] {
        quiet(args);
    }
}
