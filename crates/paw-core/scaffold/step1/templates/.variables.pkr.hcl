variable "source_ami_id" {
  type        = string
  description = "The AMI this step starts from: the root base AMI, or the previous step's AMI."
}

variable "output_ami_name" {
  type        = string
  description = "The name of the AMI this step makes; unique in a region."
}

variable "aws_region" {
  type        = string
  description = "The AWS region where the AMI is built."
}

variable "vpc_name" {
  type        = string
  description = "The VPC the build runs in."
}

variable "is_default_vpc" {
  type        = string
  description = "Is that the default VPC? \"true\" or \"false\" (a string)."
}

variable "subnet_name" {
  type        = string
  description = "The Name tag of the subnet the build runs in."
}

variable "security_group_name" {
  type        = string
  description = "The Name tag of the security group the build uses."
}

variable "ec2_iam_role_name" {
  type        = string
  description = "The instance profile of the build instance."
}
