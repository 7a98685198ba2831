//! The first errors a new user meets against AWS: each one readable, with its cause and a help
//! line, never the SDK's Debug dump.

use crate::emulator::Emulator;
use crate::harness::{Paw, Run, debug_form};

const FIND: &[&str] = &["-w", "wf", "base-ami", "find", "--name", "ubuntu*"];

#[track_caller]
fn one_clear_error(run: &Run, code: i32) -> &str {
    assert_eq!(run.code, code, "{}", run.stderr);
    assert_eq!(run.stderr.lines().filter(|line| line.starts_with("error:")).count(), 1, "{}", run.stderr);
    for dump in ["DispatchFailure", "ConnectorError", "SdkBody", "{ "] {
        assert!(!run.stderr.contains(dump), "a Debug dump: {}", run.stderr);
    }
    &run.stderr
}

#[test]
fn a_profile_that_does_not_exist_is_named_with_the_profiles_that_do() {
    let paw = Paw::example("chain");
    paw.write(".aws-config-none", "[default]\nregion = us-east-1\n[profile dev]\n[sso-session corp]\n");
    paw.write(".aws-credentials-none", "[ci]\naws_access_key_id = x\naws_secret_access_key = y\n");
    paw.edit(
        "wf/workflow_param.json",
        "\"region_name\": \"us-east-1\",",
        "\"profile_name\": \"bmt_app_dev_us_east_1\",\n    \"region_name\": \"us-east-1\",",
    );
    let run = paw.run(FIND);
    let stderr = one_clear_error(&run, 2);
    assert!(
        stderr.contains(
            "wf/workflow_param.json:6:5: the AWS profile \"bmt_app_dev_us_east_1\" is not in the AWS config or \
             credentials files (there are: ci, default, dev)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("help: name one of those, or add the profile"), "{stderr}");

    // The same from AWS_PROFILE, with no profile in the params.
    paw.edit("wf/workflow_param.json", "\"profile_name\": \"bmt_app_dev_us_east_1\",\n", "");
    let paw = paw.env("AWS_PROFILE", "nope");
    let stderr = one_clear_error(&paw.run(FIND), 2).to_string();
    assert!(stderr.contains("the AWS profile \"nope\" is not in the AWS config or credentials files (there are: ci, default, dev) (from AWS_PROFILE)"), "{stderr}");
}

#[test]
fn no_credentials_at_all_is_said_so() {
    let paw = Paw::example("chain");
    let stderr = one_clear_error(&paw.run(FIND), 1).to_string();
    assert!(stderr.contains("error: no AWS credentials found"), "{stderr}");
    assert!(stderr.contains("help: set profile_name in workflow_param.json or AWS_PROFILE"), "{stderr}");
}

#[test]
fn an_sso_profile_without_a_session_says_to_log_in() {
    let paw = Paw::example("chain");
    paw.write(
        ".aws-config-none",
        "[profile corp]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin\nregion = us-east-1\n\
         [sso-session corp]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\n",
    );
    // No cached SSO token: HOME is a folder without one.
    let home = paw.path("home").to_string_lossy().into_owned();
    let paw = paw.env("AWS_PROFILE", "corp").env("HOME", home);
    let stderr = one_clear_error(&paw.run(FIND), 1).to_string();
    assert!(stderr.contains("error: the AWS SSO session is missing or has expired"), "{stderr}");
    assert!(stderr.contains("help: log in again: `aws sso login --profile corp`"), "{stderr}");
}

#[test]
fn an_endpoint_that_cannot_be_reached_is_named() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let paw = Paw::example("chain")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    let stderr = one_clear_error(&paw.run(FIND), 1).to_string();
    assert!(stderr.contains(&format!("error: ec2:DescribeImages failed: cannot reach {endpoint}: ")), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("help: check the network, the region, and AWS_ENDPOINT_URL"), "{stderr}");
}

#[test]
fn credentials_that_aws_rejects_point_at_sts_get_caller_identity() {
    let emulator = Emulator::start_enforcing_iam();
    // The emulator's first unsigned calls are free: spend them on a user, so the next call is checked.
    emulator.iam_user(&["ec2:DescribeImages"]);
    let paw = emulator
        .configure(Paw::example("chain"))
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret");
    let stderr = one_clear_error(&paw.run(FIND), 1).to_string();
    assert!(stderr.contains("error: ec2:DescribeImages failed: "), "{stderr}");
    assert!(stderr.contains("help: AWS rejects these credentials: `aws sts get-caller-identity`"), "{stderr}");
    assert!(!stderr.contains("not-a-real-secret"));
}

#[test]
fn doctor_is_green_on_a_ready_machine_and_names_what_is_missing() {
    let emulator = Emulator::start();
    emulator.create_network();
    let paw = emulator.configure(Paw::example("chain"));
    let run = paw.run(&["-w", "wf", "doctor"]);
    let stdout = &run.success().stdout;
    for check in [
        "✓ workflow folder: wf (3 steps)",
        "✓ templates render: 3 steps, HCL ok",
        "✓ packer: ",
        "✓ region: us-east-1",
        "✓ credentials: the environment (AWS_ACCESS_KEY_ID); account ",
        "✓ EC2: ami-785db401 (",
        "✓ image usage: ec2:DescribeImageReferences answers",
        "✓ catalog: sqlite:wf/.paw/catalog.sqlite, not created yet, the first build creates it (0 records",
        "✓ VPC: vpc-",
        "✓ subnet: subnet-",
        "✓ security group: sg-",
        "✓ instance profile: arn:aws:iam::",
    ] {
        assert!(stdout.contains(check), "{check}\n{stdout}");
    }
    assert!(!stdout.contains('✗'), "{stdout}");
    // What a newcomer reads first is words: no debug form, no "1 steps".
    for args in [&["-w", "wf", "doctor"][..], &["-w", "wf", "plan"], &["-w", "wf", "status"]] {
        let run = paw.run(args);
        for text in [&run.stdout, &run.stderr] {
            assert_eq!(debug_form(text), None, "paw {}", args.join(" "));
        }
    }

    paw.edit("wf/workflow_param.json", "default/public/1", "default/public/9");
    let run = paw.run(&["-w", "wf", "doctor", "--json"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let checks = run.json();
    let subnet = checks.as_array().unwrap().iter().find(|check| check["check"] == "subnet").unwrap();
    assert_eq!(subnet["ok"], false);
    assert!(subnet["detail"].as_str().unwrap().starts_with("no subnet named \"default/public/9\" in vpc-"), "{subnet}");
    assert!(subnet["fix"].as_str().unwrap().starts_with("set subnet_name in workflow_param.json"), "{subnet}");
    let text = paw.run(&["-w", "wf", "doctor"]).stdout;
    assert!(text.contains("✗ subnet: no subnet named \"default/public/9\" in vpc-"), "{text}");
    assert!(text.contains("\n    fix: set subnet_name in workflow_param.json"), "{text}");
    assert!(run.stderr.contains("error: 1 of 12 checks failed: subnet"), "{}", run.stderr);

    // Credentials that may not ask who uses an image: said, with the permission to add.
    let denied = [("FAULT_RATE", "1"), ("FAULT_KINDS", "deny"), ("FAULT_ACTIONS", "^DescribeImageReferences$")];
    let network = crate::faults::FaultyNetwork::start_with(&emulator.endpoint, &denied);
    let text = paw.run_with(&[("AWS_ENDPOINT_URL", &network.endpoint)], &["-w", "wf", "doctor"]).stdout;
    assert!(
        text.contains("✗ image usage: ec2:DescribeImageReferences failed: UnauthorizedOperation: injected deny: paw keeps every image it cannot tell unused"),
        "{text}"
    );
    assert!(text.contains("fix: the AWS credentials in use lack the permission ec2:DescribeImageReferences"), "{text}");

    paw.edit("wf/workflow_param.json", "\"is_default_vpc\": \"true\"", "\"is_default_vpc\": \"false\"");
    paw.edit("wf/workflow_param.json", "\"vpc_name\": \"default\"", "\"vpc_name\": \"no-such-vpc\"");
    let text = paw.run(&["-w", "wf", "doctor"]).stdout;
    assert!(text.contains("✗ VPC: no VPC named \"no-such-vpc\""), "{text}");
    assert_eq!(debug_form(&text), None);
}
