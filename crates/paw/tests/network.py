"""Gives the emulator what examples/chain's workflow_param.json names: a subnet "default/public/1"
in the default VPC, a security group "default/sg/allow-ssh", an instance profile "ec2-packer-role".

Usage: network.py ENDPOINT
"""

import sys

import boto3

endpoint = sys.argv[1]
session = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **session)
vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
ec2.create_tags(Resources=[subnet], Tags=[{"Key": "Name", "Value": "default/public/1"}])
ec2.create_security_group(GroupName="default/sg/allow-ssh", Description="ssh", VpcId=vpc)
boto3.client("iam", **session).create_instance_profile(InstanceProfileName="ec2-packer-role")
