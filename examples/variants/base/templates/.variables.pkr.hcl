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

variable "instance_type" {
  type        = string
  description = "The EC2 instance type of the build instance."
}

variable "aws_endpoint_url" {
  type        = string
  description = "An EC2 endpoint to use instead of AWS's own (the local emulator); empty for real AWS."
  default     = env("AWS_ENDPOINT_URL")
}
