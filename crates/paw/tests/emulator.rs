//! The local AWS API emulator (moto, started by scripts/moto_server.py) and a small EC2 client on the
//! AWS SDK to check what paw did. One emulator per test: no test sees another's AMIs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use aws_sdk_ec2::types::{Filter, InstanceStateName};

use crate::harness::{Paw, start_python_server};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct Emulator {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Emulator {
    /// Starts the emulator on a free loopback port; fails (never skips) when it is not installed.
    pub fn start() -> Emulator {
        Emulator::start_with(&[])
    }

    /// An emulator that checks IAM permissions, after three unsigned calls to set up a user
    /// (`iam_user`).
    pub fn start_enforcing_iam() -> Emulator {
        Emulator::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")])
    }

    /// A user allowed only `actions`: its access key and secret.
    pub fn iam_user(&self, actions: &[&str]) -> (String, String) {
        let output = Command::new(repo_root().join(".venv/bin/python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/iam_user.py"))
            .arg(&self.endpoint)
            .args(actions)
            .output()
            .expect("iam_user.py runs");
        assert!(output.status.success(), "iam_user.py: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).unwrap();
        let (key, secret) = text.trim().split_once(' ').expect("a key and a secret");
        (key.to_string(), secret.to_string())
    }

    fn start_with(env: &[(&str, &str)]) -> Emulator {
        let (child, port, dir) = start_python_server(&repo_root().join("scripts/moto_server.py"), env);
        Emulator { child, endpoint: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    /// paw's environment for this emulator: its endpoint and made-up credentials.
    pub fn configure(&self, paw: Paw) -> Paw {
        paw.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
    }

    /// The AWS SDK's configuration for this emulator.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await
    }

    /// An SSM parameter's value, or None when there is no such parameter.
    pub fn ssm_parameter(&self, name: &str) -> Option<String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let client = aws_sdk_ssm::Client::new(&self.sdk_config().await);
            let output = client.get_parameter().name(name).send().await.ok()?;
            output.parameter()?.value().map(str::to_string)
        })
    }

    pub fn ec2(&self) -> Ec2 {
        self.ec2_in("us-east-1")
    }

    pub fn ec2_in(&self, region: &str) -> Ec2 {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = runtime.block_on(self.sdk_config());
        let config = config.to_builder().region(aws_config::Region::new(region.to_string())).build();
        Ec2 { client: aws_sdk_ec2::Client::new(&config), runtime }
    }

    /// Creates what examples/chain's workflow_param.json names: subnet, security group, instance
    /// profile (tests/network.py).
    pub fn create_network(&self) {
        let output = Command::new(repo_root().join(".venv/bin/python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/network.py"))
            .arg(&self.endpoint)
            .output()
            .expect("network.py runs");
        assert!(output.status.success(), "network.py: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Runs the seed's own DynamoDB model (tests/seed_catalog.py) against this emulator.
    pub fn seed_catalog(&self, args: &[&str]) -> String {
        let output = Command::new(repo_root().join(".venv/bin/python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed_catalog.py"))
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .expect("the seed's model runs");
        assert!(output.status.success(), "seed_catalog.py {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Emulator {
    /// Runs a helper script of tests/ that acts as `account` in `region` (through AssumeRole, as
    /// paw does): its output.
    fn as_account(&self, script: &str, account: &str, region: &str, args: &[&str]) -> String {
        let output = Command::new(repo_root().join(".venv/bin/python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script))
            .args([&self.endpoint, account, region])
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("{script} runs: {err}"));
        assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// What `account` sees in `region` (tests/account_view.py): the images it owns, and the values
    /// of the SSM parameters named.
    pub fn account_view(&self, account: &str, region: &str, parameters: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.as_account("account_view.py", account, region, parameters)).unwrap()
    }

    /// An instance of `image_id` that `account` launches in `region` (tests/run_instance_as.py): its id.
    pub fn run_instance_as(&self, account: &str, region: &str, image_id: &str) -> String {
        self.as_account("run_instance_as.py", account, region, &[image_id])
    }

    /// An SSM parameter holding an image id (DataType aws:ec2:image), as another team's would.
    pub fn put_image_parameter(&self, name: &str, image_id: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let client = aws_sdk_ssm::Client::new(&self.sdk_config().await);
            let request = client.put_parameter().name(name).value(image_id).data_type("aws:ec2:image");
            request.r#type(aws_sdk_ssm::types::ParameterType::String).overwrite(true).send().await.unwrap();
        });
    }

    /// A KMS key with `alias` in `account` and `region` (tests/make_key.py): its id.
    pub fn make_kms_key(&self, account: &str, region: &str, alias: &str) -> String {
        self.as_account("make_key.py", account, region, &[alias])
    }

    /// A KMS signing key (`spec`: ECC_NIST_P256, RSA_2048, ...; SIGN_VERIFY) with `alias` in the
    /// build account's us-east-1.
    pub fn make_signing_key(&self, alias: &str, spec: &str) -> String {
        self.as_account("make_key.py", "123456789012", "us-east-1", &[alias, spec])
    }

    /// Runs tests/tamper.py: what an attacker with write access does. Its output.
    pub fn tamper(&self, args: &[&str]) -> String {
        self.helper("tamper.py", args)
    }

    /// Runs a helper script of tests/ against this emulator (its endpoint the first argument),
    /// which must succeed: its output.
    pub fn helper(&self, script: &str, args: &[&str]) -> String {
        let output = Command::new(repo_root().join(".venv/bin/python"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script))
            .arg(&self.endpoint)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("{script} runs: {err}"));
        assert!(output.status.success(), "{script} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the tests ask EC2 directly.
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    runtime: tokio::runtime::Runtime,
}

pub type Tags = std::collections::BTreeMap<String, String>;

fn tag_map(tags: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tags.iter().map(|tag| (tag.key().unwrap().to_string(), tag.value().unwrap_or_default().to_string())).collect()
}

impl Ec2 {
    /// The image's tags and snapshot ids, or None when EC2 has no such image.
    pub fn image(&self, image_id: &str) -> Option<(Tags, Vec<String>)> {
        let output = self.runtime.block_on(self.client.describe_images().image_ids(image_id).send()).ok()?;
        let image = output.images().first()?;
        let snapshots = image
            .block_device_mappings()
            .iter()
            .filter_map(|mapping| mapping.ebs()?.snapshot_id().map(str::to_string))
            .collect();
        Some((tag_map(image.tags()), snapshots))
    }

    /// The snapshot's tags, or None when it does not exist.
    pub fn snapshot(&self, snapshot_id: &str) -> Option<Tags> {
        let output = self.runtime.block_on(self.client.describe_snapshots().snapshot_ids(snapshot_id).send()).ok()?;
        output.snapshots().first().map(|snapshot| tag_map(snapshot.tags()))
    }

    /// Ids of this account's snapshots (the emulator ignores OwnerIds=self: filtered by owner-id).
    pub fn own_snapshots(&self) -> Vec<String> {
        let owner = Filter::builder().name("owner-id").values("123456789012").build();
        let output = self.runtime.block_on(self.client.describe_snapshots().filters(owner).send()).unwrap();
        output.snapshots().iter().map(|snapshot| snapshot.snapshot_id().unwrap().to_string()).collect()
    }

    /// Ids of the instances that are pending or running.
    pub fn live_instances(&self) -> Vec<String> {
        let filter = Filter::builder().name("instance-state-name").values("pending").values("running").build();
        let output = self.runtime.block_on(self.client.describe_instances().filters(filter).send()).unwrap();
        output.reservations().iter().flat_map(|r| r.instances()).map(|i| i.instance_id().unwrap().to_string()).collect()
    }

    /// Ids of the EBS volumes there are (a test's instance leaves none).
    pub fn volumes(&self) -> Vec<String> {
        let output = self.runtime.block_on(self.client.describe_volumes().send()).unwrap();
        output.volumes().iter().map(|volume| volume.volume_id().unwrap().to_string()).collect()
    }

    /// Every AMI of this account in the emulator, as (id, name).
    pub fn own_images(&self) -> Vec<(String, String)> {
        let output = self.runtime.block_on(self.client.describe_images().owners("self").send()).unwrap();
        output.images().iter().map(|i| (i.image_id().unwrap().to_string(), i.name().unwrap().to_string())).collect()
    }

    /// The key pairs packer makes (`packer_<uuid>`) that are still there.
    pub fn packer_key_pairs(&self) -> Vec<String> {
        let output = self.runtime.block_on(self.client.describe_key_pairs().send()).unwrap();
        output
            .key_pairs()
            .iter()
            .filter_map(|pair| pair.key_name())
            .filter(|name| name.starts_with("packer_"))
            .map(str::to_string)
            .collect()
    }

    /// The security groups packer makes (`packer_<uuid>`) that are still there.
    pub fn packer_security_groups(&self) -> Vec<String> {
        let output = self.runtime.block_on(self.client.describe_security_groups().send()).unwrap();
        output
            .security_groups()
            .iter()
            .filter_map(|group| group.group_name())
            .filter(|name| name.starts_with("packer_"))
            .map(str::to_string)
            .collect()
    }

    pub fn run_instance(&self, image_id: &str) -> String {
        let output = self
            .runtime
            .block_on(
                self.client
                    .run_instances()
                    .image_id(image_id)
                    .min_count(1)
                    .max_count(1)
                    .instance_type("t2.micro".into())
                    .send(),
            )
            .unwrap();
        output.instances()[0].instance_id().unwrap().to_string()
    }

    /// The accounts with launch permission on the image (DescribeImageAttribute).
    pub fn launch_permissions(&self, image_id: &str) -> Vec<String> {
        let request = self
            .client
            .describe_image_attribute()
            .image_id(image_id)
            .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission);
        let output = self.runtime.block_on(request.send()).unwrap();
        output.launch_permissions().iter().filter_map(|permission| permission.user_id().map(str::to_string)).collect()
    }

    /// The accounts with create-volume permission on the snapshot (DescribeSnapshotAttribute).
    pub fn create_volume_permissions(&self, snapshot_id: &str) -> Vec<String> {
        let request = self
            .client
            .describe_snapshot_attribute()
            .snapshot_id(snapshot_id)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission);
        let output = self.runtime.block_on(request.send()).unwrap();
        output
            .create_volume_permissions()
            .iter()
            .filter_map(|permission| permission.user_id().map(str::to_string))
            .collect()
    }

    /// The image's state (`available`, `disabled`, ...), or None when EC2 has no such image.
    pub fn image_state(&self, image_id: &str) -> Option<String> {
        let request = self.client.describe_images().image_ids(image_id).include_disabled(true);
        let output = self.runtime.block_on(request.send()).ok()?;
        output.images().first()?.state().map(|state| state.as_str().to_string())
    }

    /// When EC2 deprecates (or deprecated) the image, if it does.
    pub fn deprecation_time(&self, image_id: &str) -> Option<String> {
        let request = self.client.describe_images().image_ids(image_id).include_disabled(true);
        let output = self.runtime.block_on(request.send()).ok()?;
        output.images().first()?.deprecation_time().map(str::to_string)
    }

    /// `enabled` (or `enabled-with-cooldown`) while DeregisterImage is refused, else `disabled`.
    pub fn deregistration_protection(&self, image_id: &str) -> Option<String> {
        let request = self.client.describe_images().image_ids(image_id).include_disabled(true);
        let output = self.runtime.block_on(request.send()).ok()?;
        output.images().first()?.deregistration_protection().map(str::to_string)
    }

    /// Turns the image's deregistration protection on or off, as someone at the console would.
    pub fn protect(&self, image_id: &str, on: bool) {
        if on {
            let request = self.client.enable_image_deregistration_protection().image_id(image_id);
            self.runtime.block_on(request.send()).unwrap();
        } else {
            let request = self.client.disable_image_deregistration_protection().image_id(image_id);
            self.runtime.block_on(request.send()).unwrap();
        }
    }

    /// A launch template whose version 1, its default, names `default_image`, and whose version 2
    /// (its latest) names `latest_image`: its id.
    pub fn launch_template(&self, name: &str, default_image: &str, latest_image: &str) -> String {
        let data = |image: &str| aws_sdk_ec2::types::RequestLaunchTemplateData::builder().image_id(image).build();
        let request =
            self.client.create_launch_template().launch_template_name(name).launch_template_data(data(default_image));
        let output = self.runtime.block_on(request.send()).unwrap();
        let id = output.launch_template().unwrap().launch_template_id().unwrap().to_string();
        let version = self
            .client
            .create_launch_template_version()
            .launch_template_id(&id)
            .launch_template_data(data(latest_image));
        self.runtime.block_on(version.send()).unwrap();
        id
    }

    pub fn terminate_instance(&self, instance_id: &str) {
        self.runtime.block_on(self.client.terminate_instances().instance_ids(instance_id).send()).unwrap();
    }

    pub fn stop_instance(&self, instance_id: &str) {
        self.runtime.block_on(self.client.stop_instances().instance_ids(instance_id).send()).unwrap();
        let output = self.runtime.block_on(self.client.describe_instances().instance_ids(instance_id).send()).unwrap();
        let state = output.reservations()[0].instances()[0].state().unwrap().name().unwrap().clone();
        assert_eq!(state, InstanceStateName::Stopped);
    }
}
