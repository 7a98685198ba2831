"""What another account sees in the emulator: python account_view.py ENDPOINT ACCOUNT REGION
[PARAMETER...] prints, as JSON, the images that ACCOUNT owns in REGION (id, name, tags, state,
snapshots), the values of the SSM parameters named, and its DynamoDB tables there, acting as
ACCOUNT through STS AssumeRole, as paw does."""

import json
import sys

from as_account import client

endpoint, account, region, *parameters = sys.argv[1:]
ec2 = client("ec2", endpoint, account, region)
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
ssm = client("ssm", endpoint, account, region)
values = {}
for name in parameters:
    try:
        values[name] = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        values[name] = None
tables = client("dynamodb", endpoint, account, region).list_tables()["TableNames"]
print(json.dumps({"account": client("sts", endpoint, account, region).get_caller_identity()["Account"], "images": images,
                  "parameters": values, "tables": tables}))
