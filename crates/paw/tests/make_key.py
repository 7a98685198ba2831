"""Makes a KMS key with an alias in another account of the emulator, as that account (STS
AssumeRole): python make_key.py ENDPOINT ACCOUNT REGION ALIAS; prints the key's id."""

import sys

import boto3

endpoint, account, region, alias = sys.argv[1:]
base = dict(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
credentials = boto3.client("sts", region_name="us-east-1", **base).assume_role(
    RoleArn=f"arn:aws:iam::{account}:role/paw-test-keys", RoleSessionName="paw-test-keys"
)["Credentials"]
kms = boto3.client(
    "kms",
    endpoint_url=endpoint,
    region_name=region,
    aws_access_key_id=credentials["AccessKeyId"],
    aws_secret_access_key=credentials["SecretAccessKey"],
    aws_session_token=credentials["SessionToken"],
)
key = kms.create_key(Description="paw's tests")["KeyMetadata"]["KeyId"]
kms.create_alias(AliasName=alias, TargetKeyId=key)
print(key)
