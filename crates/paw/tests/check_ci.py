"""Checks for paw's CI features, with the virtualenv's jsonschema and PyYAML.

events SCHEMA FILE: every line of FILE is an event valid under SCHEMA; prints the types seen as JSON.
commands FILE...: every `paw ...` a CI file (GitHub workflow or .gitlab-ci.yml) runs, as JSON lists
  of the subcommand words and the options it passes, for the test to check against `paw --help`.
action-step FILE ID: the shell script of the step ID of the composite action FILE, with its `env`,
  as JSON, for the test to run it as the runner would.
"""

import json
import shlex
import sys

import jsonschema
import yaml

# paw's global options that take a value: skipped with it when finding the subcommand.
VALUED = {"-w", "--workflow", "--catalog", "--workflow-id", "--name", "--variant", "--param", "--ci"}


def events(schema_path, lines_path):
    validator = jsonschema.Draft202012Validator(json.load(open(schema_path)))
    seen = []
    for number, line in enumerate(open(lines_path), 1):
        event = json.loads(line)
        errors = sorted(validator.iter_errors(event), key=str)
        if errors:
            sys.exit(f"line {number}: {errors[0].message} in {line.strip()}")
        if event["type"] not in seen:
            seen.append(event["type"])
    print(json.dumps(seen))


def scripts(document):
    """Every shell line a GitHub workflow's steps or a GitLab job runs."""
    for name, job in (document.get("jobs") or {}).items():
        for step in job.get("steps", []):
            yield from str(step.get("run", "")).splitlines()
    for name, job in document.items():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                for line in job.get(key, []):
                    yield from str(line).splitlines()


def commands(paths):
    found = []
    for path in paths:
        for line in scripts(yaml.safe_load(open(path))):
            words = shlex.split(line, comments=True)
            for start in [i for i, word in enumerate(words) if word == "paw"]:
                rest, sub, options = words[start + 1 :], [], []
                skip = False
                for word in rest:
                    if word in ("||", "&&", ";", "|"):
                        break
                    if skip:
                        skip = False
                    elif word in VALUED:
                        skip = True
                    elif word.startswith("-"):
                        options.append(word.split("=")[0])
                    elif len(sub) < 2 and not options:
                        sub.append(word)
                found.append({"file": path, "line": line.strip(), "subcommand": sub, "options": options})
    print(json.dumps(found))


def action_step(path, step_id):
    steps = yaml.safe_load(open(path))["runs"]["steps"]
    step = next(step for step in steps if step.get("id") == step_id)
    print(json.dumps({"run": step["run"], "env": step.get("env", {})}))


if __name__ == "__main__":
    if sys.argv[1] == "events":
        events(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "action-step":
        action_step(sys.argv[2], sys.argv[3])
    else:
        commands(sys.argv[2:])
