"""Writes expected/: what Jinja2 3 itself renders for the fixture workflow (run once; commit the output).

The context is built as the seed builds it: `builder` with the source AMI, the output AMI name, and
workflow_param / step_param as the JSON files' keys in order, the seed's unset fields as None, and
aws_region. Usage: python generate_expected.py (needs jinja2 3).
"""

import json
import pathlib
import re

import jinja2

HERE = pathlib.Path(__file__).parent
SEED_WORKFLOW_KEYS = [
    "workflow_id", "vpc_name", "is_default_vpc", "subnet_name", "security_group_name",
    "ec2_iam_role_name", "root_base_ami_id", "root_base_ami_name", "profile_name", "region_name",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_tags",
]
REGION = "eu-west-3"
SOURCES = {"step_a": ("ami-0123456789abcdef0", "base/images/"), "step_b": ("ami-0fedcba9876543210", "parent-ami")}


def load_json(path):
    text = path.read_text()
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    return json.loads(text)


def main():
    workflow = load_json(HERE / "workflow" / "workflow_param.json")
    for key in SEED_WORKFLOW_KEYS:
        workflow.setdefault(key, None)
    workflow["aws_region"] = REGION
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for step_id, (source_id, source_name) in SOURCES.items():
        step_dir = HERE / "workflow" / step_id
        step = load_json(step_dir / "step_param.json")
        step.setdefault("previous_step_id", None)
        step.setdefault("metadata", {})
        builder = {
            "source_ami_id": source_id,
            "source_ami_name": source_name,
            "output_ami_name": f"{workflow['root_base_ami_name'].rstrip('/')}/{workflow['workflow_id']}/{step_id}",
            "workflow_param": workflow,
            "step_param": step,
        }
        for template in sorted((step_dir / "templates").iterdir()):
            text = env.from_string(template.read_text()).render(builder=builder)
            (HERE / "expected" / f"{step_id}{template.name}").write_text(text)


if __name__ == "__main__":
    main()
