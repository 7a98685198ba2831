source_ami_id = "ami-0123456789abcdef0"
output_ami_name = "base/images/wf-1/step_a"
