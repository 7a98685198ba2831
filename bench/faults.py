"""bench/faults' driver: ROUNDS rounds per fault rate (see bench/faults)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv/bin/python")


def serve(script, env, work):
    """Starts a loopback server script that writes its port to a file; returns (process, endpoint)."""
    port_file = work / (pathlib.Path(script).stem + ".port")
    process = subprocess.Popen([PYTHON, str(script), str(port_file)], env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if port_file.exists() and port_file.read_text().strip():
            return process, f"http://127.0.0.1:{port_file.read_text().strip()}"
        time.sleep(0.1)
    raise SystemExit(f"{script} did not start")


def paw(folder, endpoint, *args):
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
    env.pop("PAW_CATALOG", None)
    return subprocess.run([os.environ["PAW_BIN"], "-w", str(folder), *args], env=env,
                          capture_output=True, text=True)


def problems(folder, endpoint):
    """What is lost or leaked, asked of the emulator directly after a fault-free rerun."""
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    found = []
    instances = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"] for i in r["Instances"]]
    found += [f"instance {i}" for i in instances]
    found += [f"key pair {k['KeyName']}" for k in ec2.describe_key_pairs()["KeyPairs"] if k["KeyName"].startswith("packer_")]
    found += [f"security group {g['GroupName']}" for g in ec2.describe_security_groups()["SecurityGroups"]
              if g["GroupName"].startswith("packer_")]
    images = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    listed = paw(folder, endpoint, "images", "list", "--json")
    records = {r["ami_id"] for r in json.loads(listed.stdout)} if listed.returncode == 0 else set()
    found += [f"AMI {a} unknown to the catalog" for a in sorted(images - records)]
    found += [f"record of {a}, which is gone" for a in sorted(records - images)]
    if len(records) != 3:
        found.append(f"{len(records)} records for 3 steps")
    return found


def round_(rate, seed, work):
    emulator, direct = serve(ROOT / "scripts/moto_server.py", {}, work)
    faults, faulty = serve(ROOT / "crates/paw/tests/faults.py", {
        "FAULT_UPSTREAM": direct, "FAULT_SEED": str(seed), "FAULT_RATE": str(rate)}, work)
    folder = work / "wf"
    shutil.copytree(ROOT / "examples/chain", folder, ignore=shutil.ignore_patterns(".paw"))
    try:
        first = paw(folder, faulty, "build")
        rerun = paw(folder, direct, "build")
        found = problems(folder, direct) if rerun.returncode == 0 else [f"the fault-free rerun failed: {rerun.stderr[-400:]}"]
        return first.returncode == 0, found, first.stderr
    finally:
        for process in (faults, emulator):
            process.kill()
            process.wait()


def main():
    rounds, rates = int(sys.argv[1]), [float(rate) for rate in sys.argv[2:]]
    print(f"{'fault rate':>10} {'rounds':>7} {'finished':>9} {'failed cleanly':>15} {'lost/leaked':>12} {'seconds':>8}")
    for rate in rates:
        finished = failed = broken = 0
        start = time.time()
        for seed in range(1, rounds + 1):
            with tempfile.TemporaryDirectory() as work:
                ok, found, stderr = round_(rate, seed, pathlib.Path(work))
            finished += ok
            failed += not ok and not found
            if found:
                broken += 1
                print(f"  rate {rate} seed {seed}: {'; '.join(found)}", file=sys.stderr)
            if not ok and not found:
                errors = [line for line in stderr.splitlines() if "error:" in line][:1]
                print(f"  rate {rate} seed {seed} failed cleanly: {errors}", file=sys.stderr)
        print(f"{rate:>10} {rounds:>7} {finished:>9} {failed:>15} {broken:>12} {time.time() - start:>8.0f}", flush=True)


main()
