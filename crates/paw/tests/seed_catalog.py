"""The seed's own DynamoDB model (packer_ami_workflow 0.1.2's AmiData), for paw's round-trip tests.

Usage:
  seed_catalog.py ENDPOINT TABLE write WORKFLOW_ID STEP_ID AMI_ID   creates the table if missing, saves an item
  seed_catalog.py ENDPOINT TABLE read WORKFLOW_ID STEP_ID           prints AmiData.get_image's item as JSON, or null
  seed_catalog.py ENDPOINT TABLE query-workflow WORKFLOW_ID         prints query_by_workflow's AMI ids, a JSON list
  seed_catalog.py ENDPOINT TABLE query-step STEP_ID                 prints query_by_step_id's AMI ids, a JSON list
"""

import datetime
import json
import sys

import pynamodb_mate.api as pm
from packer_ami_workflow.api import AmiData


def model(endpoint, table):
    class Data(AmiData):
        class Meta:
            table_name = table
            region = "us-east-1"
            host = endpoint
            billing_mode = pm.constants.PAY_PER_REQUEST_BILLING_MODE

    return Data


def main():
    endpoint, table, action = sys.argv[1:4]
    Data = model(endpoint, table)
    if action == "query-workflow":
        print(json.dumps([item.ami_id for item in Data.query_by_workflow(sys.argv[4])]))
        return
    if action == "query-step":
        print(json.dumps([item.ami_id for item in Data.query_by_step_id(sys.argv[4])]))
        return
    workflow_id, step_id = sys.argv[4:6]
    if action == "write":
        ami_id = sys.argv[6]
        if not Data.exists():
            Data.create_table(wait=True)
        Data(
            workflow_id=workflow_id,
            step_id=step_id,
            ami_id=ami_id,
            ami_name=f"root/{workflow_id}/{step_id}",
            create_at=datetime.datetime.now(datetime.timezone.utc),
            aws_console_url=f"https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#ImageDetails:imageId={ami_id}",
            base_ami_id="ami-base",
            base_ami_name="base",
            root_base_ami_id="ami-root",
            root_base_ami_name="root",
            details={"id": ami_id, "tags": {"Name": f"root/{workflow_id}/{step_id}"}, "data": {"ImageId": ami_id}},
            metadata={"written_by": "the seed"},
        ).save()
    elif action == "read":
        item = Data.get_image(workflow_id, step_id)
        if item is None:
            print("null")
            return
        print(json.dumps({
            "workflow_id": item.workflow_id,
            "step_id": item.step_id,
            "ami_id": item.ami_id,
            "ami_name": item.ami_name,
            "create_at": item.create_at.isoformat(),
            "aws_console_url": item.aws_console_url,
            "base_ami_id": item.base_ami_id,
            "base_ami_name": item.base_ami_name,
            "root_base_ami_id": item.root_base_ami_id,
            "root_base_ami_name": item.root_base_ami_name,
            "details": item.details,
            "metadata": item.metadata,
        }))
    else:
        sys.exit(f"unknown action {action}")


if __name__ == "__main__":
    main()
