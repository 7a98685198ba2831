"""Starts moto's AWS API emulator on loopback with the fixes paw's tests need.

1. Images made by CreateImage report RootDeviceType "standard", and packer refuses such a source AMI
   ("Expected 'ebs', got 'standard'"); make "ebs" the default so that chained steps build.
2. CreateImage with a snapshot TagSpecification is not implemented; paw tags snapshots with CreateTags
   after the image exists, so nothing needs patching for that.
3. DynamoDB's conditional writes are atomic; moto's threaded server checks the condition and writes
   without a lock, so two racing writers can both "win". One lock around DynamoDB's writes restores
   the real service's guarantee, which paw's concurrent-write test relies on.
4. EC2 keeps AMI names unique per account and region: CreateImage, CopyImage and RegisterImage of a
   name in use fail with InvalidAMIName.Duplicate. moto makes a second AMI of the same name, so a
   write retried after its answer was lost would look like a leak that EC2 never lets happen.
5. Image lifecycle calls moto lacks (see add_image_lifecycle): deprecation, deregistration
   protection, and the images' last launch time.
6. Images shared across accounts (see share_images_across_accounts): EC2 lets an account that an
   AMI's launch permission names (or `all`) describe it by id and copy it; moto looks only in the
   caller's own account, so CopyImage in a target account fails with InvalidAMIID.NotFound.
7. Who uses an image (see add_image_usage), which moto does not implement: DescribeImageReferences
   from the emulator's instances, launch template versions and SSM parameters, with paging; image
   usage reports (Create, Describe, DescribeEntries, Delete) from other accounts' instances and
   launch templates, each report `pending` for a moment before `available`.

Usage: python moto_server.py PORT_FILE — binds a free port on 127.0.0.1, writes it to PORT_FILE once
the server answers, and serves until killed.
"""

import inspect
import os
import socket
import sys
import threading
import time
import urllib.request

from moto.dynamodb.models import DynamoDBBackend
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import amis
from moto.server import ThreadedMotoServer


def make_ebs_the_default_root_device_type():
    init = amis.Ami.__init__
    names = [
        p.name
        for p in inspect.signature(init).parameters.values()
        if p.default is not inspect.Parameter.empty
    ]
    defaults = list(init.__defaults__)
    defaults[names.index("root_device_type")] = "ebs"
    init.__defaults__ = tuple(defaults)


def make_dynamodb_writes_atomic():
    lock = threading.Lock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        unlocked = getattr(DynamoDBBackend, name)

        def locked(*args, _unlocked=unlocked, **kwargs):
            with lock:
                return _unlocked(*args, **kwargs)

        setattr(DynamoDBBackend, name, locked)


def keep_ami_names_unique():
    lock = threading.Lock()
    for name in ("create_image", "copy_image", "register_image"):
        unchecked = getattr(amis.AmiBackend, name)

        def checked(backend, *args, _unchecked=unchecked, **kwargs):
            wanted = inspect.signature(_unchecked).bind(backend, *args, **kwargs).arguments.get("name")
            with lock:
                for ami in list(backend.amis.values()):
                    if wanted and ami.name == wanted and ami.owner_id == backend.account_id:
                        raise EC2ClientError(
                            "InvalidAMIName.Duplicate", f"AMI name {wanted} is already in use by AMI {ami.id}"
                        )
                return _unchecked(backend, *args, **kwargs)

        setattr(amis.AmiBackend, name, checked)


def add_image_lifecycle():
    """5. EnableImageDeprecation / DisableImageDeprecation, Enable/DisableImageDeregistrationProtection
    and the images' LastLaunchedTime, which moto does not implement: as EC2 documents them.
    DescribeImages shows DeprecationTime, DeregistrationProtection and LastLaunchedTime (and
    DescribeImageAttribute lastLaunchedTime); RunInstances sets the launch time; DeregisterImage of
    a protected image fails with OperationNotPermitted, as the CLI shows EC2 refusing it."""
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.responses.amis import AmisResponse
    from moto.core.responses import ActionResult

    for name, default in (("deprecation_time", None), ("deregistration_protection", "disabled"),
                          ("last_launched_time", None)):
        setattr(amis.Ami, name, default)
    # DescribeImageAttribute reads `lld` for lastLaunchedTime.
    amis.Ami.lld = property(lambda ami: ami.last_launched_time)

    def ami(response):
        ami_id = response._get_param("ImageId")
        response.error_on_dryrun()
        images = response.ec2_backend.describe_images(ami_ids=[ami_id])
        return images[0]

    def enable_image_deprecation(self):
        image = ami(self)
        at = self._get_param("DeprecateAt")
        image.deprecation_time = at if isinstance(at, str) else at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return ActionResult({"Return": True})

    def disable_image_deprecation(self):
        ami(self).deprecation_time = None
        return ActionResult({"Return": True})

    def enable_image_deregistration_protection(self):
        cooldown = str(self._get_param("WithCooldown", False)).lower() == "true"
        ami(self).deregistration_protection = "enabled-with-cooldown" if cooldown else "enabled"
        return ActionResult({"Return": "enabled"})

    def disable_image_deregistration_protection(self):
        ami(self).deregistration_protection = "disabled"
        return ActionResult({"Return": "disabled"})

    for handler in (enable_image_deprecation, disable_image_deprecation, enable_image_deregistration_protection,
                    disable_image_deregistration_protection):
        setattr(AmisResponse, handler.__name__, handler)

    unprotected = amis.AmiBackend.deregister_image

    def deregister_image(backend, ami_id, *args, **kwargs):
        image = backend.amis.get(ami_id)
        if image is not None and image.deregistration_protection != "disabled":
            raise EC2ClientError(
                "OperationNotPermitted",
                f"The image {ami_id} cannot be deregistered because deregistration protection is enabled",
            )
        return unprotected(backend, ami_id, *args, **kwargs)

    amis.AmiBackend.deregister_image = deregister_image

    unlaunched = InstanceBackend.run_instances

    def run_instances(backend, image_id, *args, **kwargs):
        reservation = unlaunched(backend, image_id, *args, **kwargs)
        image = backend.amis.get(image_id)
        if image is not None:
            image.last_launched_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return reservation

    InstanceBackend.run_instances = run_instances


def share_images_across_accounts():
    """6. DescribeImages by id, and CopyImage, which looks its source up that way, find an AMI of
    another account in the same region when its launch permission names the caller's account, or
    `all`, as EC2 does (a shared AMI is private to everyone else). The copy is the caller's own."""
    from moto.ec2.exceptions import InvalidAMIIdError
    from moto.ec2.models import ec2_backends

    own_only = amis.AmiBackend.describe_images

    def shared_with(backend, ami_ids):
        found = []
        for account, regions in list(ec2_backends.items()):
            if account == backend.account_id or backend.region_name not in regions:
                continue
            for ami in list(regions[backend.region_name].amis.values()):
                granted = {"UserId": backend.account_id} in ami.launch_permissions or ami.is_public
                if ami.id in ami_ids and granted:
                    found.append(ami)
        return found

    def describe_images(backend, ami_ids=None, filters=None, exec_users=None, owners=None):
        shared = shared_with(backend, ami_ids) if ami_ids else []
        if not shared:
            return own_only(backend, ami_ids=ami_ids, filters=filters, exec_users=exec_users, owners=owners)
        rest = [ami_id for ami_id in ami_ids if ami_id not in {ami.id for ami in shared}]
        try:
            mine = own_only(backend, ami_ids=rest, filters=filters, exec_users=exec_users, owners=owners) if rest else []
        except InvalidAMIIdError:
            mine = []
        return mine + shared

    amis.AmiBackend.describe_images = describe_images


def add_image_usage():
    """7. As the EC2 API reference shapes them: DescribeImageReferences (1 to 10 ImageIds, ResourceTypes or
    IncludeAllResourceTypes, the options state-name and version-depth, MaxResults and NextToken),
    answered from this account's instances (not terminated, unless state-name says otherwise),
    launch template versions (the newest version-depth of each, 20 by default) and SSM parameters
    (the newest value; Image Builder is not emulated, so no recipe ever refers to an image); and
    Create/Describe/Delete image usage reports: per other account (AccountIds, or every account the
    launch permission names), the count of its instances and launch templates that use the image
    in the image's region, `pending` for REPORT_PENDING_SECONDS, then `available`."""
    import datetime
    import uuid

    from moto.ec2.models import ec2_backends
    from moto.ec2.responses.amis import AmisResponse
    from moto.core.responses import ActionResult
    from moto.ssm.models import ssm_backends

    pending_seconds = float(os.environ.get("REPORT_PENDING_SECONDS", "0.5"))
    reports = {}
    instance_types = ("ec2:Instance", "ec2:LaunchTemplate", "ssm:Parameter", "imagebuilder:ImageRecipe",
                      "imagebuilder:ContainerRecipe")

    def options(requested, resource_type, name, default):
        for request in requested or []:
            if request.get("ResourceType") == resource_type:
                for option in request.get("ResourceTypeOptions") or []:
                    if option.get("OptionName") == name:
                        return option.get("OptionValues") or default
        return default

    def live_instances(backend, states=None):
        for reservation in list(backend.reservations.values()):
            for instance in reservation.instances:
                if (instance.state in states) if states else instance.state != "terminated":
                    yield instance

    def templates_using(backend, image_ids, depth):
        for template in list(backend.launch_templates.values()):
            for version in template.versions[-depth:]:
                if version.image_id in image_ids:
                    yield template, version

    def references(backend, image_ids, requested, every_type):
        region, account = backend.region_name, backend.account_id
        types = set(instance_types) if every_type else {r.get("ResourceType") for r in requested or []}
        found = []
        if "ec2:Instance" in types:
            states = options(requested, "ec2:Instance", "state-name", None)
            for instance in live_instances(backend, states):
                if instance.image_id in image_ids:
                    found.append((instance.image_id, "ec2:Instance",
                                  f"arn:aws:ec2:{region}:{account}:instance/{instance.id}"))
        if "ec2:LaunchTemplate" in types:
            depth = int(options(requested, "ec2:LaunchTemplate", "version-depth", ["20"])[0])
            seen = set()
            for template, version in templates_using(backend, image_ids, depth):
                if (version.image_id, template.id) not in seen:
                    seen.add((version.image_id, template.id))
                    found.append((version.image_id, "ec2:LaunchTemplate",
                                  f"arn:aws:ec2:{region}:{account}:launch-template/{template.id}"))
        if "ssm:Parameter" in types:
            parameters = ssm_backends[account][region]._parameters
            for name, versions in list(dict.items(parameters)):
                if versions and versions[-1].value in image_ids:
                    found.append((versions[-1].value, "ssm:Parameter",
                                  f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"))
        return [{"ImageId": image, "ResourceType": kind, "Arn": arn} for image, kind, arn in sorted(found)]

    def page(response, items):
        start = int(response._get_param("NextToken") or 0)
        size = int(response._get_param("MaxResults") or 1000)
        rest = items[start + size:]
        return items[start:start + size], (str(start + size) if rest else None)

    def describe_image_references(self):
        self.error_on_dryrun()
        image_ids = self._get_param("ImageIds", [])
        requested = self._get_param("ResourceTypes", [])
        every_type = str(self._get_param("IncludeAllResourceTypes", False)).lower() == "true"
        if not image_ids or not (requested or every_type):
            raise EC2ClientError("InvalidParameterCombination",
                                 "ImageIds and either IncludeAllResourceTypes or ResourceTypes are required")
        if len(image_ids) > 10:
            raise EC2ClientError("InvalidParameterValue", "ImageIds takes at most 10 image ids")
        for image_id in image_ids:
            if image_id not in self.ec2_backend.amis:
                raise EC2ClientError("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        items, token = page(self, references(self.ec2_backend, set(image_ids), requested, every_type))
        return ActionResult({"ImageReferences": items, "NextToken": token})

    def usage_entries(backend, image, accounts, requested):
        entries = []
        depth = int(options(requested, "ec2:LaunchTemplate", "version-depth", ["20"])[0])
        for account in accounts:
            there = ec2_backends[account][backend.region_name]
            counts = {
                "ec2:Instance": sum(1 for i in live_instances(there) if i.image_id == image.id),
                "ec2:LaunchTemplate": len({t.id for t, _ in templates_using(there, {image.id}, depth)}),
            }
            for kind in [r.get("ResourceType") for r in requested or []]:
                if counts.get(kind):
                    entries.append({"ResourceType": kind, "UsageCount": counts[kind], "AccountId": account,
                                    "ImageId": image.id})
        return entries

    def create_image_usage_report(self):
        self.error_on_dryrun()
        image_id = self._get_param("ImageId")
        image = self.ec2_backend.amis.get(image_id)
        if image is None or image.owner_id != self.ec2_backend.account_id:
            raise EC2ClientError("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        requested = self._get_param("ResourceTypes", [])
        if not requested:
            raise EC2ClientError("MissingParameter", "The request must contain the parameter ResourceTypes")
        accounts = self._get_param("AccountIds", []) or [
            permission["UserId"] for permission in image.launch_permissions if "UserId" in permission
        ]
        now = datetime.datetime.now(datetime.timezone.utc)
        report_id = "amiur-" + uuid.uuid4().hex[:17]
        reports[report_id] = {
            "owner": (self.ec2_backend.account_id, self.ec2_backend.region_name),
            "ready_at": time.time() + pending_seconds,
            "report": {"ImageId": image_id, "ReportId": report_id, "AccountIds": accounts,
                       "ResourceTypes": [{"ResourceType": r.get("ResourceType")} for r in requested],
                       "CreationTime": now, "ExpirationTime": now + datetime.timedelta(days=30)},
            "entries": [dict(entry, ReportId=report_id, ReportCreationTime=now)
                        for entry in usage_entries(self.ec2_backend, image, accounts, requested)],
        }
        return ActionResult({"ReportId": report_id})

    def own_reports(response):
        mine = (response.ec2_backend.account_id, response.ec2_backend.region_name)
        report_ids = response._get_param("ReportIds", [])
        image_ids = response._get_param("ImageIds", [])
        for report_id, held in list(reports.items()):
            if held["owner"] != mine:
                continue
            if (report_ids and report_id not in report_ids) or (image_ids and held["report"]["ImageId"] not in image_ids):
                continue
            yield held

    def describe_image_usage_reports(self):
        self.error_on_dryrun()
        found = []
        for held in own_reports(self):
            state = "available" if time.time() >= held["ready_at"] else "pending"
            found.append(dict(held["report"], State=state))
        items, token = page(self, found)
        return ActionResult({"ImageUsageReports": items, "NextToken": token})

    def describe_image_usage_report_entries(self):
        self.error_on_dryrun()
        found = [entry for held in own_reports(self) if time.time() >= held["ready_at"] for entry in held["entries"]]
        items, token = page(self, found)
        return ActionResult({"ImageUsageReportEntries": items, "NextToken": token})

    def delete_image_usage_report(self):
        self.error_on_dryrun()
        report_id = self._get_param("ReportId")
        held = reports.get(report_id)
        if held is None or held["owner"] != (self.ec2_backend.account_id, self.ec2_backend.region_name):
            raise EC2ClientError("InvalidImageUsageReportId.NotFound", f"The report '{report_id}' does not exist")
        del reports[report_id]
        return ActionResult({"Return": True})

    for handler in (describe_image_references, create_image_usage_report, describe_image_usage_reports,
                    describe_image_usage_report_entries, delete_image_usage_report):
        setattr(AmisResponse, handler.__name__, handler)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    port_file = sys.argv[1]
    make_ebs_the_default_root_device_type()
    make_dynamodb_writes_atomic()
    keep_ami_names_unique()
    add_image_lifecycle()
    share_images_across_accounts()
    add_image_usage()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2)
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    with open(port_file + ".tmp", "w") as out:
        out.write(str(port))
    # Renamed into place so that a reader never sees a half-written port.
    os.replace(port_file + ".tmp", port_file)
    threading.Event().wait()


if __name__ == "__main__":
    main()
