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

  # On real AWS this is a "shell" provisioner running `sudo apt-get install -y ...` over SSH.
  provisioner "shell-local" {
    inline = [
{%- for package in builder.step_param.packages %}
      "echo 'installing {{ package }}'",
{%- endfor %}
    ]
  }
}
