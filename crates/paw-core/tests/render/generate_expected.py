"""Writes what Jinja2 3 itself renders, for paw's byte-for-byte tests (run it; commit the output):

- expected/: the fixture workflow's templates. The context is built as the seed builds it: `builder`
  with the source AMI, the output AMI name, and workflow_param / step_param as the JSON files' keys
  in order, the seed's unset fields as None, and aws_region.
- ../jinja/expected.json: every case of the parity corpus ../jinja/corpus.txt, as `{"output": text}`,
  or `{"error": "Type: message"}` where Jinja2 refuses the template; and the names of Jinja2's
  built-in filters, tests and globals, which paw's test checks the corpus uses, every one.

Templates are rendered as the seed renders them: `jinja2.Template(text).render(...)`, Jinja2's
defaults (its lenient Undefined, no trim_blocks or lstrip_blocks, the last newline dropped).
A case Jinja2 cannot finish (a runaway loop, a value larger than memory) is recorded as the error
it ends in: MemoryError under a 4 GiB address-space limit, or a timeout after 10 seconds.
Usage: .venv/bin/python crates/paw-core/tests/render/generate_expected.py (needs jinja2 3).
"""

import json
import pathlib
import re
import resource
import signal

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
    env = jinja2.Environment()
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


def corpus_cases(text):
    """The cases of corpus.txt as (name, context, template); the format is described at its top."""
    cases, current = [], None
    for line in text.split("\n"):
        if line.startswith("### "):
            name, _, rest = line[4:].partition(" | ")
            context = rest.split(" | ")[0] or "{}"
            current = [name.strip(), json.loads(context), []]
            cases.append(current)
        elif current is not None:
            current[2].append(line)
    return [(name, context, "\n".join(lines).removesuffix("\n")) for name, context, lines in cases]


class Timeout(Exception):
    pass


def on_alarm(*_):
    raise Timeout("Jinja2 did not finish in 10 seconds")


def corpus():
    corpus_dir = HERE.parent / "jinja"
    expected = {}
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    signal.signal(signal.SIGALRM, on_alarm)
    for name, context, template in corpus_cases((corpus_dir / "corpus.txt").read_text()):
        signal.alarm(10)
        try:
            expected[name] = {"output": jinja2.Template(template).render(**context)}
        except (Exception, MemoryError) as error:  # what Jinja2 refuses, paw must refuse too
            expected[name] = {"error": f"{type(error).__name__}: {error}"}
        finally:
            signal.alarm(0)
    env = jinja2.Environment()
    builtins = {
        "version": jinja2.__version__,
        "filters": sorted(env.filters),
        "tests": sorted(env.tests),
        "globals": sorted(env.globals),
    }
    text = json.dumps({"jinja2": builtins, "cases": expected}, indent=1, ensure_ascii=False) + "\n"
    (corpus_dir / "expected.json").write_text(text)


if __name__ == "__main__":
    main()
    corpus()
