//! `paw report`: the step tree and its images as one self-contained HTML page (no network: the
//! styles are inline, there are no scripts, fonts or images), rendered from templates/report.html.

use std::path::PathBuf;

use paw_core::ops::report::{self, ImageTree};
use paw_core::{Error, ErrorKind};
use serde_json::{Value, json};

use crate::context::Context;
use crate::output::{Report, plural};

const TEMPLATE: &str = include_str!("../../templates/report.html");

pub struct Page {
    data: ImageTree,
    html: String,
    /// Where it was written; None: the page is the output.
    written_to: Option<PathBuf>,
}

pub async fn report(cx: &Context, html: Option<PathBuf>, all_workflows: bool) -> paw_core::Result<Page> {
    // Without AWS (credentials, network) the report is whole but for the deprecation times.
    let ec2 = match cx.ec2(None).await {
        Ok(ec2) => Some(ec2),
        Err(err) => {
            eprintln!("paw: the report leaves out EC2's deprecation times: {}", err.message);
            None
        }
    };
    let ec2 = ec2.as_ref().map(|ec2| ec2 as &dyn paw_core::ec2::Ec2);
    // The statements are checked with the workflow's signer's key, when it has one.
    let key = match cx.signer().await? {
        Some(signer) => match signer.public_key().await {
            Ok(key) => Some(key),
            Err(err) => {
                eprintln!("paw: the report does not check the images' statements: {}", err.message);
                None
            }
        },
        None => None,
    };
    let workflows = cx.workflows_with_upstream().await?;
    let data = report::report(workflows, cx.catalog().await?, ec2, key.as_ref(), all_workflows).await?;
    let page = render(&data)?;
    if let Some(path) = &html {
        paw_core::files::write_whole(path, page.as_bytes(), None).map_err(|err| Error::io(path, "write", err))?;
    }
    Ok(Page { data, html: page, written_to: html })
}

fn render(data: &ImageTree) -> paw_core::Result<String> {
    let mut env = minijinja::Environment::new();
    // A name ending in .html: every value is HTML-escaped.
    env.add_template("report.html", TEMPLATE).expect("the report template parses");
    env.get_template("report.html")
        .and_then(|template| {
            template.render(minijinja::context! { report => minijinja::Value::from(minijinja::value::Serde(data)) })
        })
        .map_err(|err| Error::new(ErrorKind::Io, format!("cannot render the report: {err}")))
}

impl Report for Page {
    fn json(&self) -> Value {
        json!(self.data)
    }

    fn text(&self) -> String {
        match &self.written_to {
            Some(path) => format!(
                "wrote {} ({}, {}); open it in a browser",
                path.display(),
                plural(self.data.steps.len(), "step", "steps"),
                plural(self.data.image_count, "image", "images")
            ),
            None => self.html.clone(),
        }
    }
}
