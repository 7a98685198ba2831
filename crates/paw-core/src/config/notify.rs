//! The `"notify"` block: where paw's notices go (an EventBridge bus, webhooks).

use super::*;
use crate::notify::NoticeKind;

/// workflow_param.json's key of the notify block: who is told, not what an image is, so it is no
/// input of the fingerprint.
pub const NOTIFY: &str = "notify";

/// One target of the notify block: an EventBridge bus, or a webhook.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// An EventBridge bus of the build's region, by name or ARN ("default"): PutEvents, source
    /// "paw", the notice's detail-type and detail.
    #[serde(default)]
    pub eventbridge_bus: Option<String>,
    /// An https URL (http only to this machine): a POST of each notice as JSON.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The environment variable that holds the webhook's secret: the `X-Paw-Signature-256`
    /// header is then `sha256=` and the HMAC-SHA256 of the body with it. Never the secret itself.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// A webhook's body: `json` (the default: source, detail-type, time, detail) or `slack`
    /// (`{"text": ...}`, for Slack's incoming webhooks).
    #[serde(default)]
    pub format: WebhookFormat,
    /// The detail-types the target takes (`paw.image.built`, `paw.image.test_failed`,
    /// `paw.build.failed`, `paw.channel.moved`, `paw.image.revoked`, `paw.image.retired`); every
    /// one when absent.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

const NOTIFY_EXAMPLE: &str = concat!(
    r#""notify": [{"eventbridge_bus": "default"}, "#,
    r#"{"webhook": "https://hooks.example.org/paw", "secret_env": "PAW_WEBHOOK_SECRET", "events": ["paw.build.failed"]}]"#
);

impl NotifyTarget {
    pub(super) fn list(file: &JsonFile) -> Result<Vec<NotifyTarget>> {
        let Some(value) = file.object.get(NOTIFY).filter(|value| !value.is_null()) else {
            return Ok(Vec::new());
        };
        let wrong = |what: String| {
            file.key_error(NOTIFY, format!("\"{NOTIFY}\" {what}")).help(format!("write e.g. {NOTIFY_EXAMPLE}"))
        };
        let targets: Vec<NotifyTarget> =
            serde_json::from_value(value.clone()).map_err(|err| wrong(format!("is not a list of targets: {err}")))?;
        for (index, target) in targets.iter().enumerate() {
            target.check().map_err(|what| wrong(format!("target {}: {what}", index + 1)))?;
        }
        Ok(targets)
    }

    fn check(&self) -> std::result::Result<(), String> {
        match (&self.eventbridge_bus, &self.webhook) {
            (Some(_), Some(_)) => return Err("names both an eventbridge_bus and a webhook: one per target".into()),
            (None, None) => return Err("names neither an eventbridge_bus nor a webhook".into()),
            (Some(bus), None) if bus.is_empty() => return Err("has an empty eventbridge_bus".into()),
            (Some(_), None) if self.secret_env.is_some() || self.format != WebhookFormat::Json => {
                return Err("gives an EventBridge bus a webhook's secret_env or format".into());
            }
            (Some(_), None) => {}
            (None, Some(url)) => check_webhook_url(url)?,
        }
        if let Some(name) = &self.secret_env
            && !is_env_var_name(name)
        {
            return Err(format!("has a secret_env \"{name}\" that is not an environment variable's name"));
        }
        for event in self.events.iter().flatten() {
            if NoticeKind::of_detail_type(event).is_none_or(|kind| kind == NoticeKind::Test) {
                let known: Vec<&str> = NoticeKind::ALL[..6].iter().map(|kind| kind.detail_type()).collect();
                return Err(format!("has an event \"{event}\" paw does not send (it sends {})", known.join(", ")));
            }
        }
        Ok(())
    }

    /// Whether it takes notices of this kind; every target takes `paw notify test`'s.
    pub fn wants(&self, kind: NoticeKind) -> bool {
        kind == NoticeKind::Test
            || self.events.as_ref().is_none_or(|events| events.iter().any(|event| event == kind.detail_type()))
    }

    /// How summaries name it: `eventbridge:BUS`, `webhook:URL` (its path and query left out: they
    /// often hold a token).
    pub fn name(&self) -> String {
        match (&self.eventbridge_bus, &self.webhook) {
            (Some(bus), _) => format!("eventbridge:{bus}"),
            (None, Some(url)) => format!("webhook:{}", url_origin(url)),
            (None, None) => unreachable!("checked: a target names one"),
        }
    }
}

/// `https://host[:port]`: a URL without its path and query.
fn url_origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    match url[after_scheme..].find(['/', '?']) {
        Some(at) => &url[..after_scheme + at],
        None => url,
    }
}

/// https, or http to this machine (a local receiver): a notice never crosses a network in clear.
fn check_webhook_url(url: &str) -> std::result::Result<(), String> {
    if let Some(rest) = url.strip_prefix("https://") {
        return if rest.is_empty() { Err(format!("has a webhook \"{url}\" without a host")) } else { Ok(()) };
    }
    let host = url.strip_prefix("http://").map(|rest| {
        let origin = url_origin(rest);
        match origin.find(']') {
            Some(end) if origin.starts_with('[') => &origin[..=end],
            _ => origin.split(':').next().unwrap_or_default(),
        }
    });
    match host {
        Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
        Some(_) => Err(format!("has a webhook \"{url}\" over http: use https (http only to localhost)")),
        None => Err(format!("has a webhook \"{url}\" that is not an https URL")),
    }
}
