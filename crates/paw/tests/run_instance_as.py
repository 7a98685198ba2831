"""Launches an instance in another account of the emulator: python run_instance_as.py ENDPOINT ACCOUNT
REGION AMI prints the instance's id, acting as ACCOUNT through STS AssumeRole, as paw does."""

import sys

from as_account import client

endpoint, account, region, ami = sys.argv[1:]
ec2 = client("ec2", endpoint, account, region)
print(ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
