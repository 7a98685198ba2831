//! `paw notify test`: one sample notice to each of the workflow's targets.

use paw_core::notify::{Delivery, Notice};
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use crate::context::Context;
use crate::output::{Report, table};

pub struct Tested(Vec<Delivery>);

pub async fn test(cx: &Context) -> paw_core::Result<Tested> {
    let workflow = cx.workflow()?;
    if workflow.param.notify.is_empty() {
        return Err(Error::new(ErrorKind::Usage, "the workflow has no \"notify\" targets")
            .in_file(&workflow.param.path)
            .help(
                r#"add e.g. "notify": [{"eventbridge_bus": "default"}, {"webhook": "https://hooks.example.org/paw"}]"#,
            ));
    }
    let notifier = cx.notifier().await?;
    notifier.note(Notice::sample(workflow, cx.region().await?));
    Ok(Tested(notifier.deliver().await))
}

impl Report for Tested {
    fn json(&self) -> Value {
        json!(self.0)
    }

    fn text(&self) -> String {
        let rows = self
            .0
            .iter()
            .map(|delivery| {
                let result = match &delivery.error {
                    None => "delivered".to_string(),
                    Some(error) => format!("FAILED: {error}"),
                };
                vec![delivery.target.clone(), result, format!("{:.1}", delivery.seconds)]
            })
            .collect();
        table(&["TARGET", "RESULT", "SECONDS"], rows)
    }

    fn error(&self) -> Option<Error> {
        let failed: Vec<&str> =
            self.0.iter().filter(|delivery| delivery.failed > 0).map(|delivery| delivery.target.as_str()).collect();
        (!failed.is_empty()).then(|| {
            Error::new(ErrorKind::Io, format!("the sample notice did not reach {}", failed.join(", ")))
                .help("each target's error is above: check the URL, the bus, the secret and the network")
        })
    }
}
