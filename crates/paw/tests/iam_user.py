"""Creates an IAM user in the emulator allowed only the given actions; prints its access key and secret.

Usage: iam_user.py ENDPOINT ACTION...   (the emulator must let these first three calls through unsigned)
"""

import json
import sys

import boto3

endpoint, actions = sys.argv[1], sys.argv[2:]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
iam.create_user(UserName="limited")
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
iam.put_user_policy(UserName="limited", PolicyName="limited", PolicyDocument=json.dumps(policy))
key = iam.create_access_key(UserName="limited")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
