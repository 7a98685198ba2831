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


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    port_file = sys.argv[1]
    make_ebs_the_default_root_device_type()
    make_dynamodb_writes_atomic()
    keep_ami_names_unique()
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
