"""What an attacker with write access does, for the provenance tests (and what they count).

tamper.py ENDPOINT sql DB STATEMENT        runs an SQL statement on the SQLite catalog
tamper.py ENDPOINT tag AMI KEY VALUE [REGION]   sets a tag on an AMI (of us-east-1 unless REGION)
tamper.py ENDPOINT swap AMI                 copies AMI (in its region) with all its tags; prints the copy's id
tamper.py ENDPOINT count-named STEP         prints how many AMIs are tagged paw:step_id=STEP
"""

import sqlite3
import sys

import boto3

endpoint, command, *args = sys.argv[1:]
ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
if command == "sql":
    database, statement = args
    with sqlite3.connect(database) as connection:
        changed = connection.execute(statement).rowcount
    assert changed > 0, f"{statement} changed nothing"
elif command == "tag":
    ami, key, value, *region = args
    there = ec2 if not region else boto3.client("ec2", endpoint_url=endpoint, region_name=region[0],
                                                aws_access_key_id="testing", aws_secret_access_key="testing")
    there.create_tags(Resources=[ami], Tags=[{"Key": key, "Value": value}])
elif command == "swap":
    (ami,) = args
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    copy = ec2.copy_image(SourceImageId=ami, SourceRegion="us-east-1", Name=image["Name"] + "-swapped")["ImageId"]
    ec2.create_tags(Resources=[copy], Tags=image.get("Tags", []))
    print(copy)
elif command == "count-named":
    (step,) = args
    images = ec2.describe_images(Filters=[{"Name": "tag:paw:step_id", "Values": [step]}])["Images"]
    print(len(images))
else:
    sys.exit(f"unknown command {command}")
