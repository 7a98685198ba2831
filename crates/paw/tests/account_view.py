"""What another account sees in the emulator: python account_view.py ENDPOINT ACCOUNT REGION
[PARAMETER...] prints, as JSON, the images that ACCOUNT owns in REGION (id, name, tags, state,
snapshots), the values of the SSM parameters named, and its DynamoDB tables there, acting as
ACCOUNT through STS AssumeRole, as paw does."""

import json
import sys

import boto3

endpoint, account, region, *parameters = sys.argv[1:]
base = dict(endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
credentials = boto3.client("sts", region_name="us-east-1", **base).assume_role(
    RoleArn=f"arn:aws:iam::{account}:role/paw-test-view", RoleSessionName="paw-test-view"
)["Credentials"]
acting = dict(
    endpoint_url=endpoint,
    region_name=region,
    aws_access_key_id=credentials["AccessKeyId"],
    aws_secret_access_key=credentials["SecretAccessKey"],
    aws_session_token=credentials["SessionToken"],
)
ec2 = boto3.client("ec2", **acting)
images = [
    {
        "id": image["ImageId"],
        "name": image.get("Name"),
        "owner": image["OwnerId"],
        "state": image["State"],
        "deprecation": image.get("DeprecationTime"),
        "tags": {tag["Key"]: tag["Value"] for tag in image.get("Tags", [])},
        "snapshots": [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if "Ebs" in m],
    }
    for image in ec2.describe_images(Owners=["self"])["Images"]
]
ssm = boto3.client("ssm", **acting)
values = {}
for name in parameters:
    try:
        values[name] = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        values[name] = None
tables = boto3.client("dynamodb", **acting).list_tables()["TableNames"]
print(json.dumps({"account": boto3.client("sts", **acting).get_caller_identity()["Account"], "images": images,
                  "parameters": values, "tables": tables}))
