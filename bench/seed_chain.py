"""Builds a workflow folder with the seed's own library (packer_ami_workflow 0.1.2), step by step,
as its guide does: AmiBuilder.make, run_packer_build_workflow, tag_ami, create_dynamodb_item.

Usage: seed_chain.py ENDPOINT TABLE WORKFLOW_DIR STEP...   (prints the wall seconds of each step)
The seed runs `packer build -debug`, which waits for Enter at every packer step: give it `yes ''`
on stdin.
"""

import sys
import time

import pynamodb_mate.api as pm
from packer_ami_workflow.api import AmiBuilder, AmiData
from pathlib_mate import Path


def main():
    endpoint, table, workflow_dir, *steps = sys.argv[1:]

    class Data(AmiData):
        class Meta:
            table_name = table
            region = "us-east-1"
            host = endpoint
            billing_mode = pm.constants.PAY_PER_REQUEST_BILLING_MODE

    for step in steps:
        started = time.monotonic()
        builder = AmiBuilder.make(dir_step=Path(workflow_dir) / step, table_class=Data)
        builder.run_packer_build_workflow(dry_run=False)
        builder.tag_ami()
        builder.create_dynamodb_item()
        print(f"{step} {time.monotonic() - started:.3f}", file=sys.stderr)

if __name__ == "__main__":
    main()
