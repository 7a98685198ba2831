"""What an attacker with write access does, for the provenance tests.

tamper.py ENDPOINT sql DB STATEMENT        runs an SQL statement on the SQLite catalog
tamper.py ENDPOINT tag AMI KEY VALUE        sets a tag on an AMI
tamper.py ENDPOINT swap AMI                 copies AMI (in its region) with all its tags; prints the copy's id
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
    ami, key, value = args
    ec2.create_tags(Resources=[ami], Tags=[{"Key": key, "Value": value}])
elif command == "swap":
    (ami,) = args
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    copy = ec2.copy_image(SourceImageId=ami, SourceRegion="us-east-1", Name=image["Name"] + "-swapped")["ImageId"]
    ec2.create_tags(Resources=[copy], Tags=image.get("Tags", []))
    print(copy)
else:
    sys.exit(f"unknown command {command}")
