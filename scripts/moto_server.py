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
