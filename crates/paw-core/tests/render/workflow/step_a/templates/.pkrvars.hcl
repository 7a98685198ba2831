source_ami_id = "{{ builder.source_ami_id }}"
output_ami_name = "{{ builder.output_ami_name }}"

