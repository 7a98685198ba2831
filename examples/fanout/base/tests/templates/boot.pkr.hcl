# An image test: packer launches an instance from the image under test (builder.test_ami_id),
# runs the checks, and makes no AMI. Its exit code is the verdict. amazon-ebsvolume makes no AMI in
# any packer (with packer 1.7 or newer, amazon-ebs with skip_create_ami = true does the same); its
# instance, and with no ebs_volumes anything else, goes when the test ends.
variable "aws_endpoint_url" {
  type    = string
  default = env("AWS_ENDPOINT_URL")
}

source "amazon-ebsvolume" "boot" {
  instance_type = "{{ builder.workflow_param.instance_type }}"
  region        = "{{ builder.workflow_param.aws_region }}"
  source_ami    = "{{ builder.test_ami_id }}"

  # For the local emulator, as in the step's own template. On real AWS: ssh_username = "ubuntu".
  custom_endpoint_ec2        = var.aws_endpoint_url
  communicator               = "none"
  skip_credential_validation = true
}

build {
  sources = ["source.amazon-ebsvolume.boot"]

  # On real AWS this is a "shell" provisioner over SSH: `systemctl is-system-running --wait`, ...
  provisioner "shell-local" {
    inline = [
{%- for package in builder.step_param.packages %}
      "echo 'checking that {{ package }} is installed on {{ builder.test_ami_id }}'",
{%- endfor %}
    ]
  }
}
