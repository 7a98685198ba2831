//! `paw render` and `paw validate`: the templates, rendered from each step's source AMI (its
//! parent's recorded AMI when there is one, so they read the catalog), checked, and validated.

use paw_core::engine::image_tests;
use paw_core::packer::{Packer as _, PackerBinary};
use paw_core::render::{self, Prepared};
use paw_core::workflow::Workflow;
use paw_core::{engine, source};
use serde_json::{Value, json};

use crate::context::Context;
use crate::output::Report;

/// Renders and checks the named steps, each from its parent's recorded AMI when there is one; a
/// manual step (no templates/) has nothing to render: None. Each is named as a run's output names
/// it (`variant/step` for a variant's).
async fn prepare_all(
    cx: &Context,
    workflow: &Workflow,
    ids: &[String],
) -> paw_core::Result<Vec<(String, Option<Prepared>)>> {
    let region = cx.region().await?;
    let catalog = cx.catalog_for_reading().await?;
    let mut prepared = Vec::new();
    for step in workflow.select(ids)? {
        let label = engine::variant_step(workflow.variant.as_deref(), &step.id);
        if step.manual {
            prepared.push((label, None));
            continue;
        }
        let source = source::render_source(workflow, catalog.as_ref(), step).await?;
        // Not while a build in this folder has rendered the step and its packer has not read it yet.
        let _lock = render::StepLock::acquire(step).await?;
        prepared.push((label, Some(render::prepare_step(workflow, step, source, region).await?)));
    }
    Ok(prepared)
}

const MANUAL: &str = "a manual step (no templates/): nothing to render; `paw images from-instance` makes its AMI";

pub struct Rendered(Vec<(String, Option<Prepared>)>);

pub async fn render(cx: &Context, ids: &[String]) -> paw_core::Result<Rendered> {
    Ok(Rendered(prepare_all(cx, cx.workflow_with_upstream().await?, ids).await?))
}

fn file_names(prepared: &Prepared) -> Vec<String> {
    prepared.files.iter().map(|file| file.path.display().to_string()).collect()
}

impl Report for Rendered {
    fn json(&self) -> Value {
        let steps: Vec<Value> = self
            .0
            .iter()
            .map(|(step_id, prepared)| match prepared {
                Some(prepared) => json!({
                    "step_id": step_id, "source_ami_id": prepared.source.id, "files": file_names(prepared)
                }),
                None => json!({ "step_id": step_id, "manual": true, "files": [] }),
            })
            .collect();
        json!(steps)
    }

    fn text(&self) -> String {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|(step_id, prepared)| match prepared {
                Some(prepared) => format!("{step_id}: rendered {}", file_names(prepared).join(", ")),
                None => format!("{step_id}: {MANUAL}"),
            })
            .collect();
        lines.join("\n")
    }
}

pub struct Validated {
    steps: Vec<(String, Option<Prepared>)>,
    /// `packer N.N.N`, or None when there is no packer and its check was skipped.
    packer: Option<String>,
}

pub async fn validate(cx: &Context, ids: &[String]) -> paw_core::Result<Validated> {
    let packer = PackerBinary::locate();
    if packer.is_none() {
        eprintln!("warning: the packer check was skipped: no packer found (set PAW_PACKER or put packer on PATH)");
    }
    let mut steps = Vec::new();
    // A variant's files are checked before the next variant's replace them in the step folders.
    for workflow in cx.workflows_with_upstream().await? {
        let prepared_steps = prepare_all(cx, workflow, ids).await?;
        if let Some(packer) = &packer {
            let region = cx.region().await?;
            for (step, prepared) in workflow.select(ids)?.iter().zip(&prepared_steps) {
                if let Some(prepared) = &prepared.1 {
                    packer.validate(&step.dir, &prepared.var_files(), prepared.hcl.requires_plugins).await?;
                    image_tests::validate_templates(workflow, packer, step, &prepared.source, region).await?;
                }
            }
        }
        steps.extend(prepared_steps);
    }
    let packer = match &packer {
        Some(packer) => Some(packer.describe().await?),
        None => None,
    };
    Ok(Validated { steps, packer })
}

impl Report for Validated {
    fn json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|(step_id, prepared)| match prepared {
                Some(prepared) => json!({
                    "step_id": step_id,
                    "files": prepared.files.iter().map(|file| &file.path).collect::<Vec<_>>(),
                    "hcl": "ok",
                    "packer": if self.packer.is_some() { "ok" } else { "skipped" },
                }),
                None => json!({ "step_id": step_id, "manual": true }),
            })
            .collect();
        json!(steps)
    }

    fn text(&self) -> String {
        let check = self.packer.as_ref().map_or_else(|| "skipped".to_string(), |packer| format!("ok ({packer})"));
        let lines: Vec<String> = self
            .steps
            .iter()
            .map(|(step_id, prepared)| match prepared {
                Some(prepared) => {
                    format!("{step_id}: {} files rendered, HCL ok, packer validate {check}", prepared.files.len())
                }
                None => format!("{step_id}: {MANUAL}"),
            })
            .collect();
        lines.join("\n")
    }
}
