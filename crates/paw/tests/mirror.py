"""A stand-in for HashiCorp's releases site on loopback, for `paw packer install`'s tests.

Serves packer/index.json (1.5.0, 1.6.6 and a pre-release 1.7.0-beta1) and, for 1.6.6 and 1.5.0, a
zip holding a stand-in `packer` for this machine and its SHA256SUMS; 1.5.0's checksum is wrong.
The zips are redirected to, as HashiCorp's site does for downloads (paw must follow redirects).
Usage: mirror.py PORT_FILE   (writes the port it listens on to PORT_FILE)
"""

import hashlib
import http.server
import io
import json
import platform
import sys
import zipfile

OS = {"Linux": "linux", "Darwin": "darwin"}[platform.system()]
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
REDIRECTS = {}
FILES = {"/packer/index.json": json.dumps({"name": "packer", "versions": {"1.5.0": {}, "1.6.6": {}, "1.7.0-beta1": {}}}).encode()}
for version, good in [("1.6.6", True), ("1.5.0", False)]:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("packer", f"#!/bin/sh\necho 'Packer v{version}'\n")
    name = f"packer_{version}_{OS}_{ARCH}.zip"
    digest = hashlib.sha256(archive.getvalue()).hexdigest() if good else "0" * 64
    FILES[f"/downloads/packer/{version}/{name}"] = archive.getvalue()
    REDIRECTS[f"/packer/{version}/{name}"] = f"/downloads/packer/{version}/{name}"
    FILES[f"/packer/{version}/packer_{version}_SHA256SUMS"] = f"{digest}  {name}\n".encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in REDIRECTS:
            self.send_response(302)
            self.send_header("Location", REDIRECTS[self.path])
            self.end_headers()
            return
        body = FILES.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"not found")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as port_file:
    port_file.write(str(server.server_address[1]))
server.serve_forever()
