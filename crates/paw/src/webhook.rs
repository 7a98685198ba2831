//! A webhook of the `"notify"` block: an HTTP POST of each notice, signed when a secret is given.

use async_trait::async_trait;
use hmac::{Hmac, KeyInit as _, Mac as _};
use paw_core::config::{NotifyTarget, WebhookFormat};
use paw_core::notify::{Notice, NoticeTarget};
use paw_core::{Error, ErrorKind, Result};
use serde_json::json;

/// The header that carries the body's HMAC-SHA256 with the secret: `sha256=<hex>` (as GitHub's
/// `X-Hub-Signature-256`, so receivers already know how to check it).
pub const SIGNATURE_HEADER: &str = "X-Paw-Signature-256";

/// How long one attempt may wait for an answer; the notifier retries within its budget.
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct WebhookTarget {
    client: reqwest::Client,
    target: NotifyTarget,
    url: String,
    /// Read from the environment variable `secret_env` names; never printed.
    secret: Option<String>,
}

impl WebhookTarget {
    /// The webhook `target` names, its secret read from the environment: a variable named and not
    /// set is an error before anything runs, never an unsigned notice.
    pub fn new(target: &NotifyTarget) -> std::result::Result<WebhookTarget, String> {
        let url = target.webhook.clone().expect("a webhook target names its URL");
        let secret = match &target.secret_env {
            Some(name) => match std::env::var(name) {
                Ok(secret) if !secret.is_empty() => Some(secret),
                _ => return Err(format!("the webhook's secret_env {name} is not set in the environment")),
            },
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("paw/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot make an HTTP client: {err}"))?;
        Ok(WebhookTarget { client, target: target.clone(), url, secret })
    }

    /// The body a notice is posted as.
    fn body(&self, notice: &Notice) -> String {
        match self.target.format {
            WebhookFormat::Json => json!({
                "source": paw_aws::eventbridge::SOURCE,
                "detail-type": notice.kind.detail_type(),
                "time": notice.detail["time"],
                "detail": notice.detail,
            }),
            WebhookFormat::Slack => json!({"text": notice.sentence()}),
        }
        .to_string()
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", paw_core::provenance::hex(digest.as_ref()))
}

#[async_trait]
impl NoticeTarget for WebhookTarget {
    fn target(&self) -> &NotifyTarget {
        &self.target
    }

    async fn send(&self, notice: &Notice) -> Result<()> {
        let body = self.body(notice);
        let mut request = self.client.post(&self.url).header("Content-Type", "application/json");
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
        }
        // The URL's path may hold a token: errors name the target, never the whole URL.
        let failed = |what: String| Error::new(ErrorKind::Io, what);
        let response = request.body(body).send().await.map_err(|err| {
            let why = if err.is_timeout() {
                format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
            } else if err.is_connect() {
                "cannot connect".to_string()
            } else {
                "the request failed".to_string()
            };
            failed(why)
        })?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(failed(format!("HTTP {status}"))),
        }
    }
}
