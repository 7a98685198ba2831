//! EventBridge on the AWS SDK for Rust: a `"notify"` target that puts each notice on a bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use paw_core::config::NotifyTarget;
use paw_core::notify::{Notice, NoticeTarget};
use paw_core::{Error, ErrorKind, Result};

use crate::aws_error;

/// The source of every event paw puts: what an EventBridge rule matches on.
pub const SOURCE: &str = "paw";

pub struct EventBridgeTarget {
    client: Client,
    bus: String,
    target: NotifyTarget,
}

impl EventBridgeTarget {
    /// The bus `target` names, in `config`'s region.
    pub fn new(config: &aws_config::SdkConfig, target: &NotifyTarget) -> EventBridgeTarget {
        let bus = target.eventbridge_bus.clone().expect("an EventBridge target names its bus");
        EventBridgeTarget { client: Client::new(config), bus, target: target.clone() }
    }
}

#[async_trait]
impl NoticeTarget for EventBridgeTarget {
    fn target(&self) -> &NotifyTarget {
        &self.target
    }

    async fn send(&self, notice: &Notice) -> Result<()> {
        let entry = PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(notice.kind.detail_type())
            .detail(notice.detail.to_string())
            .event_bus_name(&self.bus)
            .build();
        let output =
            self.client.put_events().entries(entry).send().await.map_err(|err| aws_error("events:PutEvents", err))?;
        if output.failed_entry_count() == 0 {
            return Ok(());
        }
        let failed = output.entries().iter().find(|entry| entry.error_code().is_some());
        let why = failed.map_or("no reason given".to_string(), |entry| {
            format!("{}: {}", entry.error_code().unwrap_or_default(), entry.error_message().unwrap_or_default())
        });
        Err(Error::new(ErrorKind::Aws, format!("EventBridge did not take the event ({why})")))
    }
}
