source_ami_id = "{{ builder.source_ami_id }}"
output_ami_name = "{{ builder.output_ami_name }}"
aws_region = "{{ builder.workflow_param.aws_region }}"
instance_type = "{{ builder.workflow_param.instance_type }}"
