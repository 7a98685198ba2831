# Jinja2 shapes this file (if/else, loops); values come from packer variables (.variables.pkr.hcl).
#
# Packer 1.7 or newer: uncomment this block, and paw runs `packer init` before it validates.
# packer {
#   required_plugins {
#     amazon = {
#       source  = "github.com/hashicorp/amazon"
#       version = "~> 1"
#     }
#   }
# }

source "amazon-ebs" "{{ builder.step_param.step_id }}" {
  ami_name      = var.output_ami_name
  instance_type = "t2.micro"
  region        = var.aws_region
  ssh_username  = "ubuntu"
  source_ami    = var.source_ami_id

  # A non-default VPC needs a public IP to reach the instance.
  associate_public_ip_address = {% if builder.workflow_param.is_default_vpc == "true" %}false{% else %}true{% endif %}

  subnet_filter {
    filters = {
      "tag:Name" : var.subnet_name,
    }
    most_free = true
    random    = false
  }

  # The security group must allow SSH in.
  security_group_filter {
    filters = {
      "tag:Name" : var.security_group_name,
    }
  }

  iam_instance_profile = var.ec2_iam_role_name
}

build {
  name    = "{{ builder.step_param.step_id }}"
  sources = ["source.amazon-ebs.{{ builder.step_param.step_id }}"]

  provisioner "shell" {
    inline = [
      "lsblk",
      "df -h",
    ]
  }

  # Python with no dependencies, in one file: upload and run it.
  provisioner "shell" {
    script = "zero_deps_script.py"
  }
}
