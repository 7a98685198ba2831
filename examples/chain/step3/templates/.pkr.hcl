# Jinja2 shapes this template (the loop below); values come from packer variables.
source "amazon-ebs" "{{ builder.step_param.step_id }}" {
  ami_name      = var.output_ami_name
  instance_type = var.instance_type
  region        = var.aws_region
  source_ami    = var.source_ami_id

  # For the local emulator: no SSH, no credential or region checks against AWS itself.
  # On real AWS, drop these four lines and set ssh_username = "ubuntu" instead.
  custom_endpoint_ec2        = var.aws_endpoint_url
  communicator               = "none"
  skip_credential_validation = true
  skip_region_validation     = true
}

build {
  name    = "{{ builder.step_param.step_id }}"
  sources = ["source.amazon-ebs.{{ builder.step_param.step_id }}"]

  # The application: a script of the step folder, run by packer.
  provisioner "shell-local" {
    script           = "install_app.sh"
    environment_vars = ["PAW_STEP_ID={{ builder.step_param.step_id }}"]
  }
}
