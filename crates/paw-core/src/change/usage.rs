//! Who uses an image, read before anything retires it (`paw images usage`, and the precondition of
//! delete, revoke, prune and the lifecycle): what refers to each copy where it is
//! (DescribeImageReferences, 10 images a request), and, for a copy shared with other accounts,
//! their instances and launch templates (an image usage report paw creates, waits for and
//! deletes). A call that fails (denied, throttled, no answer) never reads as "unused": that copy's
//! usage is unknown, and the reason says why.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::{Catalog, ChannelAction, ChannelEntry, ImageRecord};
use crate::change::distribute::shared_places;
use crate::ec2::{Ec2, ImageUser, Place, ReportState, ec2_in};
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::Workflow;

/// How long paw waits for an image usage report, unless `USAGE_REPORT_WAIT_ENV` says otherwise.
const REPORT_WAIT: Duration = Duration::from_secs(120);
pub const USAGE_REPORT_WAIT_ENV: &str = "PAW_USAGE_REPORT_WAIT";

/// One user of one copy of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Use {
    pub place: Place,
    /// The copy it uses, as its place names it.
    pub ami_id: String,
    #[serde(flatten)]
    pub user: ImageUser,
}

/// An image's users, in every place it has a copy, and what could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub users: Vec<Use>,
    /// Why part of it is unknown, a line per place; empty when all of it was read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

impl Usage {
    /// Why the image may not be retired: in use, naming the users, or its usage unknown, saying
    /// why; None when it was read whole and nothing uses it. A channel's own parameters are no
    /// user here: the channel's rule governs its image (kept, refused, or revoked on purpose).
    pub fn holds(&self) -> Option<String> {
        let holding = Usage { users: self.holding().cloned().collect(), unknown: Vec::new() };
        if !holding.users.is_empty() {
            return Some(format!("in use by {}", holding.users_said()));
        }
        (!self.unknown.is_empty()).then(|| format!("usage unknown: {}", self.unknown.join("; ")))
    }

    /// Every user (its channels' parameters too), and what is not known: how `images show` says it.
    pub fn said(&self) -> String {
        let mut said = match self.users.is_empty() {
            true => "nothing uses it".to_string(),
            false => format!("in use by {}", self.users_said()),
        };
        if !self.unknown.is_empty() {
            said = format!("{said} (not known in every place: {})", self.unknown.join("; "));
        }
        said
    }

    /// Whether something other than its channels uses it.
    pub fn in_use(&self) -> bool {
        self.holding().next().is_some()
    }

    /// The users that keep the image from being retired: all but its channels' parameters.
    fn holding(&self) -> impl Iterator<Item = &Use> {
        self.users.iter().filter(|one| !matches!(one.user, ImageUser::SsmParameter { channel: Some(_), .. }))
    }

    /// The users in a few words: `3 instances, launch template lt-0ab (version 2 ($Default))`.
    pub fn users_said(&self) -> String {
        let mut said = Vec::new();
        // Instances counted per place; the place named unless it is the one region of the account.
        let mut places: Vec<&Place> = Vec::new();
        for one in self.users.iter().filter(|one| matches!(one.user, ImageUser::Instance { .. })) {
            if !places.contains(&&one.place) {
                places.push(&one.place);
            }
        }
        for place in &places {
            let count = self
                .users
                .iter()
                .filter(|one| one.place == **place && matches!(one.user, ImageUser::Instance { .. }))
                .count();
            let instances = crate::plural(count, "instance", "instances");
            let alone = places.len() == 1 && place.account.is_none();
            said.push(if alone { instances } else { format!("{instances} in {place}") });
        }
        for one in &self.users {
            let place = |what: String| match one.place.account {
                Some(_) => format!("{what} in {}", one.place),
                None => what,
            };
            match &one.user {
                ImageUser::Instance { .. } => {}
                ImageUser::LaunchTemplate { id, versions } => {
                    let versions: Vec<String> = versions.iter().map(ToString::to_string).collect();
                    said.push(place(match versions.is_empty() {
                        true => format!("launch template {id}"),
                        false => format!("launch template {id} ({})", versions.join(", ")),
                    }));
                }
                ImageUser::SsmParameter { name, channel: Some(channel) } => {
                    said.push(place(format!("SSM parameter {name} (channel {channel})")))
                }
                ImageUser::SsmParameter { name, channel: None } => said.push(place(format!("SSM parameter {name}"))),
                ImageUser::ImageRecipe { arn } => said.push(format!("Image Builder recipe {arn}")),
                ImageUser::Account { id, instances, launch_templates } => {
                    let mut what = Vec::new();
                    if *instances > 0 {
                        what.push(crate::plural(*instances as usize, "instance", "instances"));
                    }
                    if *launch_templates > 0 {
                        what.push(crate::plural(*launch_templates as usize, "launch template", "launch templates"));
                    }
                    said.push(format!("account {id} ({})", what.join(", ")));
                }
                ImageUser::Other { resource_type, arn } => said.push(format!("{resource_type} {arn}")),
            }
        }
        said.join(", ")
    }
}

/// What `status` and the report show of an image's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// How many things use it now (its channels' parameters left out); None when that could not
    /// be read.
    pub users: Option<usize>,
    /// `in use by …`, or `usage unknown: …`; None when nothing uses it.
    pub said: Option<String>,
    /// When it was last seen in use: now, while it is; else when an instance was last launched
    /// from it (EC2's LastLaunchedTime, which EC2 records about daily).
    pub last_seen_in_use: Option<String>,
}

impl Usage {
    pub fn seen(&self, last_launched_time: Option<&str>) -> Seen {
        let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let users = self.holding().count();
        Seen {
            users: (self.unknown.is_empty() || users > 0).then_some(users),
            said: self.holds(),
            last_seen_in_use: if users > 0 { Some(now()) } else { last_launched_time.map(str::to_string) },
        }
    }
}

/// An image whose users are read: its AMI id (its records') and every copy, as place key → id.
#[derive(Debug, Clone)]
pub struct Target {
    pub ami_id: String,
    pub copies: Vec<(String, String)>,
}

impl From<&ImageRecord> for Target {
    fn from(record: &ImageRecord) -> Target {
        Target { ami_id: record.ami_id.clone(), copies: record.every_copy() }
    }
}

/// Who may launch each copy besides its owner: asked of EC2 (one image), or known from the
/// distribution block (a plan of many images, which must not ask once per image).
pub enum Sharing<'a> {
    AskEc2,
    /// Place key → the accounts its copies are shared with.
    Known(&'a BTreeMap<String, Vec<String>>),
}

/// The usage of each target (keyed by its AMI id), in every place it has a copy:
/// one DescribeImageReferences per 10 images per place, and a usage report per shared copy. Never
/// fails: what cannot be read is the image's `unknown`. `channels` name paw's channel parameters.
pub async fn gather(
    ec2: &dyn Ec2,
    home_region: &str,
    targets: &[Target],
    sharing: Sharing<'_>,
    channels: &[ChannelEntry],
) -> HashMap<String, Usage> {
    let mut usage: HashMap<String, Usage> = HashMap::new();
    let mut by_place: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for target in targets {
        usage.entry(target.ami_id.clone()).or_default();
        for (key, copy) in &target.copies {
            by_place.entry(key.clone()).or_default().push((target.ami_id.clone(), copy.clone()));
        }
    }
    for (key, copies) in &by_place {
        let place = Place::parse(key);
        let regional = ec2_in(ec2, home_region, key);
        let ids: Vec<String> = copies.iter().map(|(_, copy)| copy.clone()).collect();
        match regional.image_references(&ids).await {
            Ok(references) => {
                for reference in references {
                    let Some((original, _)) = copies.iter().find(|(_, copy)| *copy == reference.image_id) else {
                        continue;
                    };
                    let user = with_channel(reference.user, original, channels);
                    let one = Use { place: place.clone(), ami_id: reference.image_id, user };
                    usage.entry(original.clone()).or_default().users.push(one);
                }
            }
            Err(err) => {
                for (original, _) in copies {
                    let why = format!("{place}: {}", err.message);
                    usage.entry(original.clone()).or_default().unknown.push(why);
                }
            }
        }
        for (original, copy) in copies {
            // The accounts a report covers; none named: every account the copy is shared with (an
            // organization's accounts are not listed). None: the copy is shared with no one.
            let covered = match &sharing {
                Sharing::Known(shared) => Ok(shared.get(key).filter(|accounts| !accounts.is_empty()).cloned()),
                Sharing::AskEc2 => regional.launch_permissions(copy).await.map(|granted| {
                    match (granted.accounts.is_empty(), granted.organization_arns.is_empty()) {
                        (true, true) => None,
                        (_, false) => Some(Vec::new()),
                        (false, true) => Some(granted.accounts),
                    }
                }),
            };
            let found = match covered {
                Ok(None) => continue,
                Ok(Some(accounts)) => report(&*regional, copy, &accounts).await,
                Err(err) => Err(err),
            };
            let entry = usage.entry(original.clone()).or_default();
            match found {
                Ok(users) => entry.users.extend(users.into_iter().map(|user| Use {
                    place: place.clone(),
                    ami_id: copy.clone(),
                    user,
                })),
                Err(err) => entry.unknown.push(format!("other accounts' use of {copy} in {place}: {}", err.message)),
            }
        }
    }
    usage
}

/// The usage of a workflow's images (its region's, as `ec2` is), as `status` and the report read
/// it: in batches, the shares known from the distribution block.
pub async fn of_workflow(
    ec2: &dyn Ec2,
    workflow: &Workflow,
    catalog: &dyn Catalog,
    targets: &[Target],
) -> Result<HashMap<String, Usage>> {
    if targets.is_empty() {
        return Ok(HashMap::new());
    }
    let shared = shared_places(&workflow.param.distribution);
    let channels = crate::catalog::current_entries(catalog, None).await?;
    // A target's own region comes first among its copies: the region `ec2` is of.
    let region = targets[0].copies.first().map(|(region, _)| region.clone()).unwrap_or_default();
    Ok(gather(ec2, &region, targets, Sharing::Known(&shared), &channels).await)
}

/// Marks an SSM parameter that a channel publishes as that channel's: the channel's own parameter,
/// or, where a channel points at the image (`original`), one of its distribution targets'
/// parameters, named with the channel (their templates' `{channel}`).
fn with_channel(user: ImageUser, original: &str, channels: &[ChannelEntry]) -> ImageUser {
    let ImageUser::SsmParameter { name, .. } = user else { return user };
    let publishing = |entry: &&ChannelEntry| {
        let own = entry.ssm_parameter.as_deref() == Some(name.as_str());
        let distributed = entry.ami_id == original && name.split('/').any(|part| part == entry.channel);
        entry.action != ChannelAction::Deleted && (own || distributed)
    };
    let channel = channels.iter().find(publishing).map(|entry| entry.channel.clone());
    ImageUser::SsmParameter { name, channel }
}

/// Other accounts' use of a shared copy: a usage report created, waited for (bounded), read and
/// deleted, whatever happens after it was created.
async fn report(regional: &dyn Ec2, ami_id: &str, accounts: &[String]) -> Result<Vec<ImageUser>> {
    let report_id = regional.create_usage_report(ami_id, accounts).await?;
    let read = read_report(regional, &report_id).await;
    let deleted = regional.delete_usage_report(&report_id).await;
    let entries = read?;
    deleted?;
    let mut by_account: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for entry in entries.into_iter().filter(|entry| entry.count > 0) {
        let counts = by_account.entry(entry.account).or_default();
        match entry.resource_type.as_str() {
            "ec2:Instance" => counts.0 += entry.count,
            _ => counts.1 += entry.count,
        }
    }
    Ok(by_account
        .into_iter()
        .map(|(id, (instances, launch_templates))| ImageUser::Account { id, instances, launch_templates })
        .collect())
}

async fn read_report(regional: &dyn Ec2, report_id: &str) -> Result<Vec<crate::ec2::AccountUse>> {
    let wait = std::env::var(USAGE_REPORT_WAIT_ENV)
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .map_or(REPORT_WAIT, Duration::from_secs_f64);
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(250);
    loop {
        match regional.usage_report_state(report_id).await? {
            ReportState::Available => return regional.usage_report_entries(report_id).await,
            ReportState::Failed(why) => {
                return Err(Error::new(ErrorKind::Aws, format!("EC2 could not make the usage report: {why}")));
            }
            ReportState::Pending if Instant::now() + pause > deadline => {
                return Err(Error::new(
                    ErrorKind::Aws,
                    format!("the usage report {report_id} was not ready within {} s", wait.as_secs()),
                )
                .help(format!("raise {USAGE_REPORT_WAIT_ENV} (seconds)")));
            }
            ReportState::Pending => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::TemplateVersion;

    fn used(user: ImageUser) -> Use {
        Use { place: Place::region("us-east-1"), ami_id: "ami-1".into(), user }
    }

    #[test]
    fn the_users_are_named_and_unknown_usage_holds_the_image_as_use_does() {
        let instance = |id: &str| used(ImageUser::Instance { id: id.into(), state: "running".into() });
        let template = used(ImageUser::LaunchTemplate {
            id: "lt-0ab".into(),
            versions: vec![TemplateVersion { number: 2, default: true, latest: false }],
        });
        let parameter = used(ImageUser::SsmParameter { name: "/team/ami".into(), channel: None });
        let account = Use {
            place: Place::parse("222222222222:eu-west-1"),
            ..used(ImageUser::Account { id: "333333333333".into(), instances: 1, launch_templates: 2 })
        };
        let usage =
            Usage { users: vec![instance("i-1"), template, instance("i-2"), parameter, account], unknown: vec![] };
        assert_eq!(
            usage.holds().unwrap(),
            "in use by 2 instances, launch template lt-0ab (version 2 ($Default)), SSM parameter /team/ami, account \
             333333333333 (1 instance, 2 launch templates)"
        );
        let channels = used(ImageUser::SsmParameter { name: "/images/app/prod".into(), channel: Some("prod".into()) });
        let published = Usage { users: vec![channels], unknown: vec![] };
        assert_eq!(published.holds(), None, "a channel's own parameter: the channel's rule governs its image");

        let why = "us-east-1: ec2:DescribeImageReferences failed: access denied";
        let unknown = Usage { users: vec![], unknown: vec![why.into()] };
        assert_eq!(unknown.holds().unwrap(), format!("usage unknown: {why}"));
        assert_eq!(Usage::default().holds(), None, "read whole, and nothing uses it");
    }

    #[test]
    fn a_parameter_a_channel_publishes_is_marked_with_the_channel() {
        let line = crate::catalog::Line { name: "app".into(), variant: None };
        let entry = ChannelEntry {
            ami_id: "ami-1".into(),
            ssm_parameter: Some("/b/prod".into()),
            ..ChannelEntry::next(&line, "prod", "app", ChannelAction::Set, ("me", None), &[])
        };
        let parameter = |name: &str| ImageUser::SsmParameter { name: name.into(), channel: None };
        let marked = |name: &str| ImageUser::SsmParameter { name: name.into(), channel: Some("prod".into()) };
        let channels = std::slice::from_ref(&entry);
        assert_eq!(with_channel(parameter("/b/prod"), "ami-other", channels), marked("/b/prod"), "its own");
        assert_eq!(with_channel(parameter("/images/app/prod/x"), "ami-1", channels), marked("/images/app/prod/x"));
        assert_eq!(
            with_channel(parameter("/images/app/prod/x"), "ami-other", channels),
            parameter("/images/app/prod/x")
        );
        assert_eq!(with_channel(parameter("/c"), "ami-1", channels), parameter("/c"), "another team's");
    }
}
