//! Notifications: what paw tells people and systems when an image is built or fails its tests, a
//! build fails, a channel moves, or an image is revoked or retired. The build (through its
//! reporter, `engine::Noting`) and the plan executor note each as it happens; the notifier delivers them
//! to the workflow's `"notify"` targets (EventBridge in paw-aws, webhooks in the binary) at the end
//! of the command, all within `DELIVERY_BUDGET`, each retried with backoff. A delivery that fails
//! never fails the command: it is named in the summary and the event stream.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};

use crate::catalog::ImageRecord;
use crate::config::NotifyTarget;
use crate::error::Result;
use crate::workflow::Workflow;

/// How long delivering a command's notices may take, every target's retries included.
pub const DELIVERY_BUDGET: Duration = Duration::from_secs(5);

/// The first wait before a failed delivery is tried again; each next one is twice as long.
const FIRST_RETRY: Duration = Duration::from_millis(200);

/// What a notice says happened: its `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NoticeKind {
    #[serde(rename = "paw.image.built")]
    ImageBuilt,
    #[serde(rename = "paw.image.test_failed")]
    ImageTestFailed,
    #[serde(rename = "paw.build.failed")]
    BuildFailed,
    #[serde(rename = "paw.channel.moved")]
    ChannelMoved,
    #[serde(rename = "paw.image.revoked")]
    ImageRevoked,
    #[serde(rename = "paw.image.retired")]
    ImageRetired,
    /// `paw notify test`'s sample.
    #[serde(rename = "paw.notify.test")]
    Test,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 7] = [
        NoticeKind::ImageBuilt,
        NoticeKind::ImageTestFailed,
        NoticeKind::BuildFailed,
        NoticeKind::ChannelMoved,
        NoticeKind::ImageRevoked,
        NoticeKind::ImageRetired,
        NoticeKind::Test,
    ];

    pub fn detail_type(self) -> &'static str {
        match self {
            NoticeKind::ImageBuilt => "paw.image.built",
            NoticeKind::ImageTestFailed => "paw.image.test_failed",
            NoticeKind::BuildFailed => "paw.build.failed",
            NoticeKind::ChannelMoved => "paw.channel.moved",
            NoticeKind::ImageRevoked => "paw.image.revoked",
            NoticeKind::ImageRetired => "paw.image.retired",
            NoticeKind::Test => "paw.notify.test",
        }
    }

    pub fn of_detail_type(name: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|kind| kind.detail_type() == name)
    }
}

/// One notice: its kind, and its detail, an event record as `schema/events-v1.json` describes
/// them (`v`, `type`, `time`, `step`, `variant` and the type's fields) with the workflow's name,
/// id and region.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub detail: Value,
}

impl Notice {
    /// A notice of `workflow`'s step (`None`: of the run) in `region`: the event record `record_type`
    /// with its `fields`.
    pub fn new(
        kind: NoticeKind,
        record_type: &str,
        workflow: Option<&Workflow>,
        step: Option<&str>,
        region: &str,
        fields: Value,
    ) -> Notice {
        let variant = workflow.and_then(|workflow| workflow.variant.as_deref());
        let names = workflow.map(|workflow| (workflow.name.as_str(), workflow.param.workflow_id.as_str()));
        Notice::of_image(kind, record_type, names, step, variant, region, fields)
    }

    /// A notice of a line's image (`names`: the workflow's name and id) where no workflow folder is
    /// at hand.
    pub(crate) fn of_image(
        kind: NoticeKind,
        record_type: &str,
        names: Option<(&str, &str)>,
        step: Option<&str>,
        variant: Option<&str>,
        region: &str,
        fields: Value,
    ) -> Notice {
        let mut detail = event_record(record_type, step, variant, fields);
        if let Some((name, workflow_id)) = names {
            detail["workflow_name"] = json!(name);
            detail["workflow_id"] = json!(workflow_id);
        }
        detail["region"] = json!(region);
        Notice { kind, detail }
    }

    /// `paw.image.revoked`: the record's image, and why.
    pub fn image_revoked(record: &ImageRecord, reason: Option<&str>) -> Notice {
        Notice::of_record(
            NoticeKind::ImageRevoked,
            "image_revoked",
            record,
            json!({"ami_id": record.ami_id, "reason": reason}),
        )
    }

    /// `paw.image.retired`: the record's image, `disabled` or `deregistered`.
    pub fn image_retired(record: &ImageRecord, retirement: &str) -> Notice {
        let fields = json!({"ami_id": record.ami_id, "retirement": retirement});
        Notice::of_record(NoticeKind::ImageRetired, "image_retired", record, fields)
    }

    /// `paw.notify.test`: `paw notify test`'s sample.
    pub fn sample(workflow: &Workflow, region: &str) -> Notice {
        let fields = json!({"message": "a sample notice from `paw notify test`"});
        Notice::new(NoticeKind::Test, "notify_test", Some(workflow), None, region, fields)
    }

    fn of_record(kind: NoticeKind, record_type: &str, record: &ImageRecord, fields: Value) -> Notice {
        let names = Some((record.workflow_name.as_deref().unwrap_or_default(), record.workflow_id.as_str()));
        let (step, variant) = (Some(record.step_id.as_str()), record.variant.as_deref());
        Notice::of_image(kind, record_type, names, step, variant, &record.region, fields)
    }

    /// The notice as a sentence, for chat (a Slack webhook's `text`).
    pub fn sentence(&self) -> String {
        let field = |key: &str| self.detail.get(key).and_then(Value::as_str);
        let step = match (field("variant"), field("step")) {
            (Some(variant), Some(step)) => format!(" {variant}/{step}"),
            (None, Some(step)) => format!(" {step}"),
            _ => String::new(),
        };
        let what = ["ami_id", "channel", "reason"].iter().filter_map(|key| field(key)).collect::<Vec<_>>().join(", ");
        let workflow = match (field("workflow_name"), field("workflow_id")) {
            (Some(name), Some(id)) => format!(" ({name}, workflow {id})"),
            _ => String::new(),
        };
        let what = if what.is_empty() { String::new() } else { format!(": {what}") };
        format!("{}{step}{what}{workflow} in {}", self.kind.detail_type(), field("region").unwrap_or("?"))
    }
}

/// Where notices go: a target of the `"notify"` block, reached.
#[async_trait]
pub trait NoticeTarget: Send + Sync {
    /// The block's target it reaches.
    fn target(&self) -> &NotifyTarget;

    /// One attempt at delivering one notice.
    async fn send(&self, notice: &Notice) -> Result<()>;
}

/// What became of one target's notices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub target: String,
    pub delivered: usize,
    pub failed: usize,
    /// Why the first notice not delivered was not (its last attempt's error).
    pub error: Option<String>,
    pub seconds: f64,
}

impl Delivery {
    /// "notification to webhook:https://… failed: 2 of 3 not delivered: …": None when all went.
    pub fn failure(&self) -> Option<String> {
        let error = self.error.as_deref()?;
        Some(format!(
            "notification to {} failed: {} of {} not delivered in {:.1} s: {error}",
            self.target,
            self.failed,
            self.delivered + self.failed,
            self.seconds
        ))
    }
}

/// A command's targets and the notices noted for them, not yet delivered.
pub struct Notifier {
    targets: Vec<Box<dyn NoticeTarget>>,
    queued: Mutex<Vec<Notice>>,
}

impl Notifier {
    pub fn new(targets: Vec<Box<dyn NoticeTarget>>) -> Notifier {
        Notifier { targets, queued: Mutex::new(Vec::new()) }
    }

    /// A notifier with no targets: it notes nothing.
    pub fn none() -> Notifier {
        Notifier::new(Vec::new())
    }

    pub fn note(&self, notice: Notice) {
        if self.targets.iter().any(|target| target.target().wants(notice.kind)) {
            self.queued.lock().expect("the notices are not poisoned").push(notice);
        }
    }

    /// Delivers every notice noted so far to each target that wants it, the targets at once, each
    /// notice retried with backoff, all within `DELIVERY_BUDGET`; what became of each target's.
    pub async fn deliver(&self) -> Vec<Delivery> {
        let notices = std::mem::take(&mut *self.queued.lock().expect("the notices are not poisoned"));
        if notices.is_empty() {
            return Vec::new();
        }
        let deadline = Instant::now() + DELIVERY_BUDGET;
        let deliveries = self.targets.iter().map(|target| deliver_to(target.as_ref(), &notices, deadline));
        futures_util::future::join_all(deliveries).await.into_iter().flatten().collect()
    }
}

async fn deliver_to(target: &dyn NoticeTarget, notices: &[Notice], deadline: Instant) -> Option<Delivery> {
    let wanted: Vec<&Notice> = notices.iter().filter(|notice| target.target().wants(notice.kind)).collect();
    if wanted.is_empty() {
        return None;
    }
    let started = Instant::now();
    let mut delivered = 0;
    let mut first_failure = None;
    for notice in &wanted {
        let mut wait = FIRST_RETRY;
        let failure = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let why = match tokio::time::timeout(left, target.send(notice)).await {
                Ok(Ok(())) => break None,
                Ok(Err(err)) => err.message,
                Err(_) => format!("no answer within the {} s budget", DELIVERY_BUDGET.as_secs()),
            };
            if Instant::now() + wait >= deadline {
                break Some(why);
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        };
        match failure {
            None => delivered += 1,
            // Retried until the budget was spent: the notices left are not tried.
            Some(why) => {
                first_failure = Some(why);
                break;
            }
        }
    }
    let failed = wanted.len() - delivered;
    Some(Delivery {
        target: target.target().name(),
        delivered,
        failed,
        error: first_failure,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The version of the event stream's schema (`--events`), and of notices' details: a field's
/// meaning never changes within one.
pub const EVENTS_VERSION: u64 = 1;

/// One event as `schema/events-v1.json` describes it: the schema's version `v`, the `type`, the
/// `time` (RFC 3339, UTC), the `step` and its `variant` (null for a run's own events), and the
/// type's own `fields`. The event stream's lines and notices' details are such records.
pub fn event_record(kind: &str, step: Option<&str>, variant: Option<&str>, fields: Value) -> Value {
    let mut event = serde_json::Map::new();
    event.insert("v".into(), json!(EVENTS_VERSION));
    event.insert("type".into(), json!(kind));
    event.insert("time".into(), json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    event.insert("step".into(), json!(step));
    event.insert("variant".into(), json!(variant));
    if let Value::Object(fields) = fields {
        event.extend(fields);
    }
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::error::{Error, ErrorKind};

    /// A target whose first `failures` attempts fail.
    struct Flaky {
        target: NotifyTarget,
        failures: usize,
        attempts: AtomicUsize,
    }

    impl Flaky {
        fn new(failures: usize, events: Option<Vec<String>>) -> Flaky {
            let target = NotifyTarget {
                eventbridge_bus: Some(format!("bus-{failures}")),
                webhook: None,
                secret_env: None,
                format: Default::default(),
                events,
            };
            Flaky { target, failures, attempts: AtomicUsize::new(0) }
        }
    }

    #[async_trait]
    impl NoticeTarget for Flaky {
        fn target(&self) -> &NotifyTarget {
            &self.target
        }

        async fn send(&self, _notice: &Notice) -> Result<()> {
            if self.attempts.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(Error::new(ErrorKind::Aws, "throttled"));
            }
            Ok(())
        }
    }

    fn built() -> Notice {
        Notice::of_image(
            NoticeKind::ImageBuilt,
            "built",
            None,
            Some("a"),
            None,
            "us-east-1",
            json!({"ami_id": "ami-1"}),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn notices_are_retried_with_backoff_within_the_budget_and_a_dead_target_is_said() {
        let only_failures = Some(vec!["paw.build.failed".to_string()]);
        let notifier = Notifier::new(vec![
            Box::new(Flaky::new(2, None)),
            Box::new(Flaky::new(usize::MAX, None)),
            Box::new(Flaky::new(0, only_failures)),
        ]);
        notifier.note(built());
        notifier.note(built());
        let started = Instant::now();
        let deliveries = notifier.deliver().await;
        assert!(started.elapsed() <= DELIVERY_BUDGET, "{:?}", started.elapsed());
        let said: Vec<(&str, usize, usize, Option<&str>)> =
            deliveries.iter().map(|d| (d.target.as_str(), d.delivered, d.failed, d.error.as_deref())).collect();
        let dead = format!("eventbridge:bus-{}", usize::MAX);
        assert_eq!(
            said,
            [("eventbridge:bus-2", 2, 0, None), (dead.as_str(), 0, 2, Some("throttled"))],
            "the third wants none"
        );
        assert!(
            deliveries[1]
                .failure()
                .unwrap()
                .starts_with(&format!("notification to {dead} failed: 2 of 2 not delivered in "))
        );
        assert!(notifier.deliver().await.is_empty(), "delivered once");
    }
}
