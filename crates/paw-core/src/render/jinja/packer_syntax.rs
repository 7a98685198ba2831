//! Packer's own Go-template syntax (`{{ .Name }}`, `{{timestamp}}`, `{{isotime "2006"}}`) in a
//! Jinja2 template: Jinja2 reads it as its own, so a template written for packer alone must wrap
//! it in `{% raw %}`. paw recognises it where a template fails, to say so.

/// packer's template functions (its "Template Engine" page), as `{{name ...}}` begins.
const PACKER_FUNCTIONS: [&str; 22] = [
    "timestamp",
    "uuid",
    "isotime",
    "strftime",
    "build_name",
    "build_type",
    "template_dir",
    "pwd",
    "user",
    "env",
    "split",
    "replace",
    "replace_all",
    "clean_resource_name",
    "clean_ami_name",
    "packer_version",
    "consul_key",
    "vault",
    "aws_secretsmanager",
    "sed",
    "lower",
    "upper",
];

/// The line with each of its packer expressions wrapped in `{% raw %}...{% endraw %}`, or None
/// when it holds none.
pub fn wrapped_in_raw(line: &str) -> Option<String> {
    let mut out = String::with_capacity(line.len() + 32);
    let mut rest = line;
    let mut found = false;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start..].find("}}").map(|end| end + 2) else { break };
        let expression = &rest[start..start + length];
        out.push_str(&rest[..start]);
        if is_packer_expression(&expression[2..length - 2]) {
            found = true;
            out.push_str(&format!("{{% raw %}}{expression}{{% endraw %}}"));
        } else {
            out.push_str(expression);
        }
        rest = &rest[start + length..];
    }
    out.push_str(rest);
    found.then_some(out)
}

fn is_packer_expression(inner: &str) -> bool {
    let inner = inner.trim_matches('-').trim();
    let mut chars = inner.chars();
    if chars.next() == Some('.') {
        return chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    }
    let word: String = inner.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let after = &inner[word.len()..];
    // `{{ upper }}` alone is a Jinja2 name as much as packer's; with arguments it is packer's.
    let takes_arguments = matches!(word.as_str(), "lower" | "upper" | "env" | "split" | "replace" | "sed");
    PACKER_FUNCTIONS.contains(&word.as_str())
        && (after.is_empty() || after.starts_with([' ', '"', '`']) && !after.trim_start().starts_with(['|', '.', '(']))
        && (!takes_arguments || !after.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packer_expressions_are_wrapped() {
        assert_eq!(
            wrapped_in_raw(r#"  description = "web-{{timestamp}}""#).unwrap(),
            r#"  description = "web-{% raw %}{{timestamp}}{% endraw %}""#
        );
        assert_eq!(
            wrapped_in_raw(r#"inline = ["echo {{ .Path }} {{ user `x` }}", "{{ builder.a }}"]"#).unwrap(),
            r#"inline = ["echo {% raw %}{{ .Path }}{% endraw %} {% raw %}{{ user `x` }}{% endraw %}", "{{ builder.a }}"]"#
        );
        assert!(wrapped_in_raw(r#"{{ isotime "2006-01-02" }}"#).is_some());
        assert!(wrapped_in_raw("{{ builder.source_ami_id }}").is_none());
        assert!(wrapped_in_raw("{{ upper }}").is_none());
        assert!(wrapped_in_raw("{{ env | default(1) }}").is_none());
    }
}
