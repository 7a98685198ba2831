source_ami_id = "ami-0fedcba9876543210"
output_ami_name = "base/images/wf-1/step_b"
