{# A Jinja2 comment: it leaves nothing behind. #}
source_ami = "{{ builder.source_ami_id }}" # {{ builder.source_ami_name }}
ami_name   = "{{ builder.output_ami_name }}"
region     = "{{ builder.workflow_param.aws_region }}"

tags = {
{%- for key, value in builder.workflow_param.aws_tags.items() %}
  "{{ key }}" = "{{ value | replace('"', '\\"') }}"
{%- endfor %}
}

# Python reprs of every kind of value
# metadata: {{ builder.step_param.metadata }}
# nested: {{ builder.workflow_param.nested }}
# tags: {{ builder.workflow_param.aws_tags }}
# none: {{ builder.workflow_param.vpc_name }} / {{ builder.step_param.previous_step_id }}
# numbers: {{ builder.workflow_param.numbers.int }} {{ builder.workflow_param.numbers.float }} {{ builder.workflow_param.numbers.big }} {{ builder.workflow_param.numbers.whole }}
# arithmetic: {{ 10 / 4 }} {{ 10 / 5 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ builder.workflow_param.numbers.int * 2 }}
# strings: {{ "a" ~ 1 ~ none }} {{ builder.output_ami_name | upper }} {{ builder.step_param.step_id.upper() }} {{ "x,y" .split(",") }}
# filters: {{ builder.step_param.packages | join(", ") }} {{ builder.step_param.packages | length }} {{ builder.step_param.packages | first }} {{ builder.workflow_param.aws_tags | list }}
# default: {{ builder.step_param.missing | default("fallback") }} {{ builder.step_param.missing is defined }}
# keys: {{ builder.workflow_param.keys() | list }}
{% set prefix = builder.workflow_param.workflow_id ~ "/" %}
{%- for package in builder.step_param.packages %}
provisioner_{{ loop.index }} = "{{ prefix }}{{ package }}"{% if loop.first %} # first{% endif %}{% if loop.last %} # last{% endif %}
{%- endfor %}
{% if builder.step_param.previous_step_id is none -%}
first_step = true
{%- else -%}
parent = "{{ builder.step_param.previous_step_id }}"
{%- endif %}
trailing newline is dropped, as Jinja2 does by default
