//! What paw needs from EC2, as a trait: paw-aws implements it on the AWS SDK.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use crate::error::Result;

/// An AMI's state as EC2 reports it: the states paw acts on by name, any other by its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    Available,
    Pending,
    Disabled,
    Other(String),
}

impl From<&str> for ImageState {
    fn from(state: &str) -> ImageState {
        match state {
            "available" => ImageState::Available,
            "pending" => ImageState::Pending,
            "disabled" => ImageState::Disabled,
            other => ImageState::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for ImageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageState::Available => "available",
            ImageState::Pending => "pending",
            ImageState::Disabled => "disabled",
            ImageState::Other(state) => state,
        })
    }
}

/// In JSON as EC2 writes it: `"available"`.
impl serde::Serialize for ImageState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An instance's state as EC2 reports it: the states paw acts on by name, any other by its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Stopped,
    ShuttingDown,
    Terminated,
    Other(String),
}

impl From<&str> for InstanceState {
    fn from(state: &str) -> InstanceState {
        match state {
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            other => InstanceState::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Other(state) => state,
        })
    }
}

/// How soon a deprecation time counts as come (`Image::deprecated_since`).
const DEPRECATED_WITHIN: chrono::Duration = chrono::Duration::minutes(5);

/// An AMI as EC2 describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub state: ImageState,
    pub creation_date: String,
    pub deprecation_time: Option<String>,
    /// When an instance was last launched from it (EC2 records it about daily), if ever.
    pub last_launched_time: Option<String>,
    /// EC2 refuses to deregister it while this is on (a channel's image, or set by hand).
    pub deregistration_protected: bool,
    pub snapshot_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
    /// The image in the API's own shape (`ImageId`, `Name`, ...), for the catalog's `details`.
    pub data: Value,
}

impl Image {
    /// Whether EC2 says the image was made at or after `since` (to the second, as EC2 keeps it).
    pub fn made_since(&self, since: chrono::DateTime<chrono::Utc>) -> bool {
        chrono::DateTime::parse_from_rfc3339(&self.creation_date)
            .is_ok_and(|created| created.timestamp() >= since.timestamp())
    }

    /// Its id and its snapshots' ids: what its tags go on.
    pub fn ids_with_snapshots(&self) -> Vec<String> {
        std::iter::once(self.id.clone()).chain(self.snapshot_ids.iter().cloned()).collect()
    }

    /// An available image with nothing else set, for unit tests to change what they look at.
    #[cfg(test)]
    pub fn available(id: &str) -> Image {
        Image {
            id: id.into(),
            name: String::new(),
            state: ImageState::Available,
            creation_date: String::new(),
            deprecation_time: None,
            last_launched_time: None,
            deregistration_protected: false,
            snapshot_ids: Vec::new(),
            tags: Vec::new(),
            data: Value::Null,
        }
    }

    /// Its deprecation time, once it has come: a time days ahead (the lifecycle policy's, set at
    /// build time) is a plan, not a deprecation. EC2 takes no past time, so "deprecate now" is
    /// the next minute (`paw lifecycle apply`): a time within `DEPRECATED_WITHIN` counts as come.
    pub fn deprecated_since(&self) -> Option<&str> {
        let due = chrono::Utc::now() + DEPRECATED_WITHIN;
        let come = |at: &&String| chrono::DateTime::parse_from_rfc3339(at).is_ok_and(|at| at.to_utc() <= due);
        self.deprecation_time.as_ref().filter(come).map(String::as_str)
    }

    /// The image as EC2 describes it after CreateTags: each tag set (replacing one of the same
    /// key), in `tags` and in the raw `data`.
    pub fn add_tags(&mut self, tags: &[(String, String)]) {
        for (key, value) in tags {
            match self.tags.iter_mut().find(|(existing, _)| existing == key) {
                Some(tag) => tag.1 = value.clone(),
                None => self.tags.push((key.clone(), value.clone())),
            }
        }
        if let Some(data) = self.data.as_object_mut() {
            let raw: Vec<Value> =
                self.tags.iter().map(|(key, value)| serde_json::json!({"Key": key, "Value": value})).collect();
            data.insert("Tags".into(), Value::Array(raw));
        }
    }

    /// The catalog's `details`: the image with a `tags` map and the raw `data`.
    pub fn details(&self) -> Value {
        let tags: serde_json::Map<String, Value> =
            self.tags.iter().map(|(key, value)| (key.clone(), Value::String(value.clone()))).collect();
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "creation_date": self.creation_date,
            "tags": tags,
            "data": self.data,
        })
    }
}

/// EC2 in `region`: `home` itself when that is its region, else the same account's EC2 there.
pub enum InRegion<'a> {
    Home(&'a dyn Ec2),
    Other(Box<dyn Ec2>),
}

impl<'a> std::ops::Deref for InRegion<'a> {
    type Target = dyn Ec2 + 'a;

    fn deref(&self) -> &Self::Target {
        match self {
            InRegion::Home(ec2) => *ec2,
            InRegion::Other(ec2) => ec2.as_ref(),
        }
    }
}

/// EC2 where a copy is (`Place::key`): `home` itself in its own region, the same account's EC2 in
/// another region, or another account's (`Ec2::in_account`).
pub fn ec2_in<'a>(home: &'a dyn Ec2, home_region: &str, place: &str) -> InRegion<'a> {
    match Place::parse(place) {
        Place { account: Some(account), region } => InRegion::Other(home.in_account(&account, &region)),
        Place { region, .. } if region == home_region => InRegion::Home(home),
        Place { region, .. } => InRegion::Other(home.in_region(&region)),
    }
}

/// Where a copy of an image is: a region of the account paw builds in, or a region of another
/// account (distribution). A record's `copies` are keyed by it: `eu-west-1`, or
/// `222222222222:eu-west-1` in another account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    pub account: Option<String>,
    pub region: String,
}

impl Place {
    pub fn region(region: &str) -> Place {
        Place { account: None, region: region.to_string() }
    }

    /// A copies key: `REGION`, or `ACCOUNT:REGION` (a region name holds no `:`).
    pub fn parse(key: &str) -> Place {
        match key.split_once(':') {
            Some((account, region)) => Place { account: Some(account.to_string()), region: region.to_string() },
            None => Place::region(key),
        }
    }

    pub fn key(&self) -> String {
        match &self.account {
            Some(account) => format!("{account}:{}", self.region),
            None => self.region.clone(),
        }
    }
}

/// In JSON as a record's copies key: `eu-west-1`, `222222222222:eu-west-1`.
impl serde::Serialize for Place {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.key())
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.account {
            Some(account) => write!(f, "{} of account {account}", self.region),
            None => f.write_str(&self.region),
        }
    }
}

/// Who may launch an image besides its owner: accounts and organizations (public launch
/// permission, which paw never grants, is not listed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchPermissions {
    pub accounts: Vec<String>,
    pub organization_arns: Vec<String>,
}

/// A resource that refers to an image, as DescribeImageReferences names it, with what paw reads of
/// it besides: an instance's state, and which of a launch template's versions name the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageUser {
    Instance {
        id: String,
        state: String,
    },
    LaunchTemplate {
        id: String,
        versions: Vec<TemplateVersion>,
    },
    /// With the channel it publishes, where it is one of paw's channel parameters.
    SsmParameter {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    ImageRecipe {
        arn: String,
    },
    /// Another account that launches the image shared with it: how many of its instances and
    /// launch templates use it (an image usage report).
    Account {
        id: String,
        instances: i64,
        launch_templates: i64,
    },
    /// A resource type paw does not know yet, by its ARN.
    Other {
        resource_type: String,
        arn: String,
    },
}

/// A launch template's version that names the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TemplateVersion {
    pub number: i64,
    pub default: bool,
    pub latest: bool,
}

impl std::fmt::Display for TemplateVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "version {}", self.number)?;
        match (self.default, self.latest) {
            (true, true) => f.write_str(" ($Default, $Latest)"),
            (true, false) => f.write_str(" ($Default)"),
            (false, true) => f.write_str(" ($Latest)"),
            (false, false) => Ok(()),
        }
    }
}

/// One user of one image (`image_id`, as the region holding it names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub image_id: String,
    pub user: ImageUser,
}

/// Another account's use of a shared image, from an image usage report: how many of its resources
/// of one type (`ec2:Instance`, `ec2:LaunchTemplate`) use it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountUse {
    pub account: String,
    pub resource_type: String,
    pub count: i64,
}

/// Where an image usage report is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportState {
    Pending,
    Available,
    /// EC2 could not make it: why.
    Failed(String),
}

/// The filters of the seed's root base AMI finder (`paw base-ami find`), and of a workflow's
/// `root_base_ami_filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseAmiQuery {
    pub name_pattern: String,
    pub owners: Vec<String>,
    /// Any architecture when None.
    pub architecture: Option<String>,
}

#[async_trait]
pub trait Ec2: Send + Sync {
    /// The same account's EC2 in another region (for an AMI's copies).
    fn in_region(&self, region: &str) -> Box<dyn Ec2>;

    /// Another account's EC2 in a region, with the credentials the distribution block gives for it
    /// (a role to assume, or a profile); without them, each call fails and says so.
    fn in_account(&self, account: &str, region: &str) -> Box<dyn Ec2>;

    /// The names of the regions EC2 knows (DescribeRegions, all of them).
    async fn region_names(&self) -> Result<Vec<String>>;

    /// CopyImage into this region (and account) from `source_region`; returns the new image's id.
    /// With `kms_key_id`, the copy is encrypted with that key (this region's, this account's).
    async fn copy_image(
        &self,
        source_region: &str,
        source_image_id: &str,
        name: &str,
        kms_key_id: Option<&str>,
    ) -> Result<String>;

    /// Adds (or with `remove`, removes) launch permission for accounts and organizations.
    async fn set_launch_permission(
        &self,
        image_id: &str,
        accounts: &[String],
        organization_arns: &[String],
        remove: bool,
    ) -> Result<()>;

    /// Adds (or removes) create-volume permission on a snapshot for accounts.
    async fn set_create_volume_permission(&self, snapshot_id: &str, accounts: &[String], remove: bool) -> Result<()>;

    /// Who may launch the image besides its owner (DescribeImageAttribute launchPermission); no
    /// one for an image that is gone.
    async fn launch_permissions(&self, image_id: &str) -> Result<LaunchPermissions>;

    async fn describe_image(&self, image_id: &str) -> Result<Option<Image>>;

    /// The images of these ids that exist (disabled ones too), in few requests: DescribeImages
    /// takes many ids at once.
    async fn describe_images(&self, image_ids: &[String]) -> Result<Vec<Image>>;

    /// EnableImageDeprecation: from `at` (RFC 3339, in the future) EC2 lists the image only to
    /// its owner and to those who name it; it can still be launched.
    async fn deprecate_image(&self, image_id: &str, at: &str) -> Result<()>;

    /// Enable/DisableImageDeregistrationProtection: while on, DeregisterImage is refused. An image
    /// that is gone has nothing to protect: done.
    async fn set_deregistration_protection(&self, image_id: &str, on: bool) -> Result<()>;

    /// The images of this account with exactly this name: one at most, as EC2 keeps names unique
    /// per region.
    async fn images_named(&self, name: &str) -> Result<Vec<Image>>;

    /// Available EBS/HVM images matching the query, newest first.
    async fn find_base_amis(&self, query: &BaseAmiQuery) -> Result<Vec<Image>>;

    async fn create_tags(&self, resource_ids: &[String], tags: &[(String, String)]) -> Result<()>;

    /// Removes these tags (by key) from the resources.
    async fn delete_tags(&self, resource_ids: &[String], keys: &[&str]) -> Result<()>;

    /// DisableImage: no instance can be launched from it; it stays, with its snapshots, until
    /// enabled again.
    async fn disable_image(&self, image_id: &str) -> Result<()>;

    async fn enable_image(&self, image_id: &str) -> Result<()>;

    /// Deregisters the image, then deletes `snapshot_ids` (pass none to keep them).
    async fn deregister_image(&self, image_id: &str, snapshot_ids: &[String]) -> Result<()>;

    /// The instance's state name (`running`, `stopped`, ...), or None when there is no such instance.
    async fn instance_state(&self, instance_id: &str) -> Result<Option<InstanceState>>;

    /// Terminates the instance and waits until it is gone; false when there was nothing to
    /// terminate (no such instance, or already terminated).
    async fn terminate_instance(&self, instance_id: &str) -> Result<bool>;

    /// Deletes the key pair; false when there is none of that name.
    async fn delete_key_pair(&self, name: &str) -> Result<bool>;

    /// Deletes the security group of that name; false when there is none.
    async fn delete_security_group(&self, name: &str) -> Result<bool>;

    /// CreateImage with the image's tags; returns the new image id.
    async fn create_image(&self, instance_id: &str, name: &str, tags: &[(String, String)]) -> Result<String>;

    /// Waits until the image is available, at most `timeout`.
    async fn wait_until_available(&self, image_id: &str, timeout: std::time::Duration) -> Result<Image>;

    /// What refers to each of these images here: DescribeImageReferences (it takes 10 ids a
    /// request; every page read), instances with their state, launch templates with the versions
    /// that name the image.
    async fn image_references(&self, image_ids: &[String]) -> Result<Vec<ImageReference>>;

    /// CreateImageUsageReport of instances and launch templates of the accounts that may launch
    /// the image (or of `accounts`); returns the report's id.
    async fn create_usage_report(&self, image_id: &str, accounts: &[String]) -> Result<String>;

    async fn usage_report_state(&self, report_id: &str) -> Result<ReportState>;

    /// The report's entries: each account's count of resources of a type that use the image.
    async fn usage_report_entries(&self, report_id: &str) -> Result<Vec<AccountUse>>;

    /// DeleteImageUsageReport; a report that is gone is deleted.
    async fn delete_usage_report(&self, report_id: &str) -> Result<()>;
}

/// How long a new AMI may stay unknown to DescribeImages: EC2 is eventually consistent, and an AMI
/// just made can be `InvalidAMIID.NotFound` for a while (packer#207, #3377).
const DESCRIBED_WITHIN: Duration = Duration::from_secs(60);

/// EC2's description of an AMI just made, asked again with backoff and jitter while EC2 does not
/// know it yet; None when it still does not at the deadline.
pub async fn describe_new(ec2: &dyn Ec2, ami_id: &str) -> Result<Option<Image>> {
    let deadline = Instant::now() + DESCRIBED_WITHIN;
    let mut pause = Duration::from_millis(250);
    loop {
        if let Some(image) = ec2.describe_image(ami_id).await? {
            return Ok(Some(image));
        }
        if Instant::now() + pause > deadline {
            return Ok(None);
        }
        let jitter = Duration::from_millis(u64::from(chrono::Utc::now().timestamp_subsec_millis() % 100));
        tokio::time::sleep(pause + jitter).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
