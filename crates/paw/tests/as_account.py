"""A boto3 client acting as another account of the emulator, through STS AssumeRole as paw does:
what the test helper scripts share."""

import boto3


def client(service, endpoint, account, region):
    base = dict(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
    credentials = boto3.client("sts", region_name="us-east-1", **base).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/paw-tests", RoleSessionName="paw-tests"
    )["Credentials"]
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
