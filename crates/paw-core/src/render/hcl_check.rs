//! The check of the rendered HCL, before packer runs: it parses, and every source block that makes
//! an AMI names it as paw does (paw finds, records and cleans up the step's AMI by that name).

use std::path::Path;

use hcl::eval::{Context, Evaluate};
use hcl::{Body, Expression, Value};

use super::Rendered;
use crate::ami::{AMI_BUILDERS, PAW_NAMES_THE_AMI};
use crate::error::{Error, ErrorKind, Location, Result};

/// What the HCL check learnt about the rendered files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HclSummary {
    /// A `packer { required_plugins { ... } }` block: `packer init` must run first (packer ≥ 1.7).
    pub requires_plugins: bool,
    /// A `variable "instance_type"` block, which `instance_types` needs.
    pub declares_instance_type: bool,
}

/// Parses every rendered file as HCL, and checks that each AMI-making source block's `ami_name`
/// is `output_ami_name`; errors point at the rendered file's line and column.
pub fn check_hcl(files: &[Rendered], output_ami_name: &str) -> Result<HclSummary> {
    let mut parsed = Vec::new();
    for file in files {
        parsed.push((file, parse_rendered(file)?));
    }
    let blocks = || parsed.iter().flat_map(|(_, body)| body.blocks());
    let requires_plugins = blocks()
        .filter(|block| block.identifier() == "packer")
        .any(|block| block.body().blocks().any(|inner| inner.identifier() == "required_plugins"));
    let declares_instance_type = blocks().any(|block| {
        block.identifier() == "variable"
            && block.labels().first().is_some_and(|label| label.as_str() == "instance_type")
    });
    let context = variables(&parsed);
    for (file, body) in &parsed {
        for source in body.blocks().filter(|block| block.identifier() == "source") {
            let [kind, name] = source.labels() else { continue };
            if AMI_BUILDERS.contains(&kind.as_str()) {
                check_ami_name(file, kind.as_str(), name.as_str(), source.body(), &context, output_ami_name)?;
            }
        }
    }
    Ok(HclSummary { requires_plugins, declares_instance_type })
}

/// A rendered file, parsed as HCL; a syntax error points at its line and column.
pub fn parse_rendered(file: &Rendered) -> Result<Body> {
    hcl::parse(&file.text).map_err(|err| match err {
        hcl::Error::Parse(parse) => {
            Error::new(ErrorKind::Validation, format!("not valid HCL after rendering: {}", parse.message()))
                .at(Location::at(&file.path, parse.location().line(), parse.location().column()))
                .help("fix the template that produced this file, then render again")
        }
        other => {
            Error::new(ErrorKind::Validation, format!("not valid HCL after rendering: {other}")).in_file(&file.path)
        }
    })
}

/// `var.*` as packer sees it, where a value is plain: variable defaults, then the var files
/// (`*.pkrvars.hcl`, which paw passes with `-var-file`) over them.
fn variables(parsed: &[(&Rendered, Body)]) -> Context<'static> {
    let mut values = hcl::Map::new();
    let plain = |expr: &Expression| expr.evaluate(&Context::new()).ok();
    for (_, body) in parsed {
        for variable in body.blocks().filter(|block| block.identifier() == "variable") {
            let default = variable.body().attributes().find(|attribute| attribute.key() == "default");
            if let (Some(label), Some(value)) = (variable.labels().first(), default.and_then(|d| plain(d.expr()))) {
                values.insert(label.as_str().to_string(), value);
            }
        }
    }
    for (_, body) in parsed.iter().filter(|(file, _)| is_var_file(&file.path)) {
        for attribute in body.attributes() {
            if let Some(value) = plain(attribute.expr()) {
                values.insert(attribute.key().to_string(), value);
            }
        }
    }
    let mut context = Context::new();
    context.declare_var("var", Value::Object(values));
    context
}

fn is_var_file(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".pkrvars.hcl")
}

fn check_ami_name(
    file: &Rendered,
    kind: &str,
    name: &str,
    source: &Body,
    context: &Context<'_>,
    output_ami_name: &str,
) -> Result<()> {
    let block = format!("source \"{kind}\" \"{name}\"");
    let Some(attribute) = source.attributes().find(|attribute| attribute.key() == "ami_name") else {
        return Err(Error::new(ErrorKind::Validation, format!("{block} has no ami_name"))
            .at(line_of(file, &block, None))
            .help(PAW_NAMES_THE_AMI));
    };
    let what = match attribute.expr().evaluate(context) {
        Ok(Value::String(named)) if named == output_ami_name => return Ok(()),
        Ok(Value::String(named)) => format!("names the AMI \"{named}\", not the step's \"{output_ami_name}\""),
        Ok(other) => format!("sets ami_name to {other}, not the step's \"{output_ami_name}\""),
        Err(_) => format!(
            "sets ami_name to `{}`, which is known only when packer runs; the step's AMI is \"{output_ami_name}\"",
            attribute.expr()
        ),
    };
    Err(Error::new(ErrorKind::Validation, format!("{block} {what}"))
        .at(line_of(file, &block, Some("ami_name")))
        .help(PAW_NAMES_THE_AMI))
}

/// Where, in the rendered file, the block's `key` attribute (or else the block itself) starts.
fn line_of(file: &Rendered, block: &str, key: Option<&str>) -> Location {
    let lines: Vec<&str> = file.text.lines().collect();
    let header = lines.iter().position(|line| line.trim_start().starts_with(block));
    let found = header.and_then(|start| match key {
        None => Some((start, lines[start].len() - lines[start].trim_start().len())),
        Some(key) => lines.iter().enumerate().skip(start + 1).find_map(|(at, line)| {
            let rest = line.trim_start().strip_prefix(key)?;
            rest.trim_start().starts_with('=').then(|| (at, line.len() - line.trim_start().len()))
        }),
    });
    match found {
        Some((line, column)) => Location::at(&file.path, line + 1, column + 1),
        None => Location::file(&file.path),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const NAME: &str = "root/wf-1/app";

    fn files(template: &str, vars: &str) -> Vec<Rendered> {
        let variables = "variable \"output_ami_name\" {\n  type = string\n  default = \"from-the-default\"\n}\n";
        vec![
            Rendered { path: PathBuf::from("app/app.pkr.hcl"), text: template.to_string() },
            Rendered { path: PathBuf::from("app/app.variables.pkr.hcl"), text: variables.to_string() },
            Rendered { path: PathBuf::from("app/app.pkrvars.hcl"), text: vars.to_string() },
        ]
    }

    fn source(ami_name: &str) -> String {
        format!(
            "# the app\nsource \"amazon-ebs\" \"app\" {{\n  region   = \"us-east-1\"\n  ami_name = {ami_name}\n}}\n"
        )
    }

    fn refusal(template: &str, vars: &str) -> String {
        let err = check_hcl(&files(template, vars), NAME).unwrap_err();
        format!("{}: {}", err.location.as_ref().map(ToString::to_string).unwrap_or_default(), err.message)
    }

    #[test]
    fn the_steps_own_name_passes_from_a_var_file_a_default_or_a_literal() {
        let from_vars = format!("output_ami_name = \"{NAME}\"\n");
        assert!(check_hcl(&files(&source("var.output_ami_name"), &from_vars), NAME).is_ok());
        assert!(check_hcl(&files(&source(&format!("\"{NAME}\"")), ""), NAME).is_ok());
        let interpolated = source("\"${var.output_ami_name}\"");
        assert!(check_hcl(&files(&interpolated, &from_vars), NAME).is_ok());
        // A source that makes no AMI is not paw's concern.
        let other = "source \"null\" \"x\" {\n  communicator = \"none\"\n}\n";
        assert!(check_hcl(&files(other, ""), NAME).is_ok());
    }

    #[test]
    fn any_other_name_is_refused_at_its_line() {
        assert_eq!(
            refusal(&source("var.output_ami_name"), ""),
            format!(
                "app/app.pkr.hcl:4:3: source \"amazon-ebs\" \"app\" names the AMI \"from-the-default\", not the step's \"{NAME}\""
            )
        );
        let stamped = refusal(&source("\"team-${timestamp()}\""), "");
        assert!(
            stamped.starts_with("app/app.pkr.hcl:4:3: ") && stamped.contains("known only when packer runs"),
            "{stamped}"
        );
        let unknown = refusal(&source("local.name"), "");
        assert!(unknown.contains("sets ami_name to `local.name`"), "{unknown}");
        let missing = refusal("source \"amazon-ebs\" \"app\" {\n  region = \"us-east-1\"\n}\n", "");
        assert_eq!(missing, "app/app.pkr.hcl:1:1: source \"amazon-ebs\" \"app\" has no ami_name");
    }
}
