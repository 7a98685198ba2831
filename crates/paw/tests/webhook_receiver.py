"""A webhook receiver on loopback for paw's notices.

Each POST is appended to the file RECEIVED names as one JSON line: its path, its body (parsed), and
whether its X-Paw-Signature-256 header is the HMAC-SHA256 of the body with SECRET (null without a
secret). MODE=hang accepts a request and never answers, as a dead endpoint behind a load balancer.
Usage: webhook_receiver.py PORT_FILE   (writes the port it listens on to PORT_FILE)
"""

import hashlib
import hmac
import http.server
import json
import os
import sys
import time

RECEIVED = os.environ["RECEIVED"]
SECRET = os.environ.get("SECRET")
MODE = os.environ.get("MODE", "ok")


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if MODE == "hang":
            time.sleep(600)
            return
        signature = self.headers.get("X-Paw-Signature-256")
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest() if SECRET else None
        with open(RECEIVED, "a") as log:
            record = {"path": self.path, "body": json.loads(body), "signature_ok": None if SECRET is None else signature == expected}
            log.write(json.dumps(record) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
with open(sys.argv[1], "w") as port_file:
    port_file.write(str(server.server_address[1]))
server.serve_forever()
