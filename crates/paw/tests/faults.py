"""A faulty network between paw and the emulator, for the fault tests and bench/faults.

Usage: faults.py PORT_FILE   (writes the port it listens on to PORT_FILE), configured by:
  FAULT_UPSTREAM      the emulator's endpoint (http://127.0.0.1:PORT)
  FAULT_SEED          seeds the draws (default 1)
  FAULT_RATE          the share of requests that get a fault (default 0.15)
  FAULT_MAX_IN_A_ROW  the most faults one request gets in a row, its retries included (default 2):
                      bounded, so that the SDK's retries get every call through in the end
  FAULT_KINDS         the kinds of fault to draw from, comma-separated (default: all five below)
  FAULT_ACTIONS       a regular expression: only the actions it matches get faults (default: all)
  FAULT_LOG           a file that gets one line per fault: "<kind> <service> <action>"
  FAULT_COUNT         a file that gets one line per request of paw's: "<service> <action>" (with
                      FAULT_RATE=0, a request counter: bench/lifecycle)
  FAULT_LAG           seconds a new AMI stays unknown to paw's DescribeImages by id
                      (InvalidAMIID.NotFound), as EC2's eventual consistency has it (default 0)
  FAULT_INDEX_LAG     seconds an item paw put in DynamoDB stays missing from Query on an index (a
                      GSI is eventually consistent; default: FAULT_LAG)

The emulator ignores EC2's ClientToken; the proxy honours it for paw's calls as EC2 does: a
request repeating an (action, ClientToken) gets the first one's answer, and nothing is done again.

Only the AWS SDK for Rust's requests (paw's own calls) get faults; packer's pass untouched. A fault
is one of, as real AWS and real networks fail:
  throttle  EC2: 503 RequestLimitExceeded; DynamoDB and SSM: 400 ThrottlingException
  error     500: EC2 InternalError; DynamoDB and SSM InternalServerError
  delay     1 to 3 s, then the request is carried out
  drop      the connection is closed before the request is carried out
  lost      the request is carried out, then the connection is closed without its answer
  deny      403: EC2 UnauthorizedOperation; DynamoDB and SSM AccessDeniedException (the credentials
            lack the permission; never drawn unless FAULT_KINDS names it)
"""

import hashlib
import json as jsonlib
import re
import http.client
import http.server
import os
import random
import sys
import threading
import time
import urllib.parse

UPSTREAM = urllib.parse.urlparse(os.environ["FAULT_UPSTREAM"])
RATE = float(os.environ.get("FAULT_RATE", "0.15"))
MAX_IN_A_ROW = int(os.environ.get("FAULT_MAX_IN_A_ROW", "2"))
LOG = os.environ.get("FAULT_LOG")
COUNT = os.environ.get("FAULT_COUNT")
LAG = float(os.environ.get("FAULT_LAG", "0"))
KINDS = os.environ.get("FAULT_KINDS", "throttle,error,delay,drop,lost").split(",")
ACTIONS = re.compile(os.environ.get("FAULT_ACTIONS", ""))
INDEX_LAG = float(os.environ.get("FAULT_INDEX_LAG", LAG))
born = {}  # AMI id -> when CreateImage, CopyImage or RegisterImage answered with it
put = {}  # (workflow_id, step_id) -> when paw's PutItem of that item was carried out
answered = {}  # (action, ClientToken) -> EC2's answer to the first request that carried it

draws = random.Random(int(os.environ.get("FAULT_SEED", "1")))
lock = threading.Lock()
in_a_row = {}  # request digest -> faults so far in a row


def service_and_action(headers, body):
    target = headers.get("X-Amz-Target")
    if target:
        prefix, action = target.split(".", 1)
        return ("dynamodb" if prefix.startswith("DynamoDB") else prefix.lower().removeprefix("amazon")), action
    params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    scope = headers.get("Authorization", "")
    service = scope.split("/")[3] if scope.count("/") >= 4 else "ec2"
    return service, params.get("Action", ["?"])[0]


def draw(digest):
    """The fault this request gets, or None; at most MAX_IN_A_ROW for the same request in a row."""
    with lock:
        if in_a_row.get(digest, 0) < MAX_IN_A_ROW and draws.random() < RATE:
            in_a_row[digest] = in_a_row.get(digest, 0) + 1
            return draws.choice(KINDS), draws.uniform(1, 3)
        in_a_row.pop(digest, None)
        return None, 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        from_paw = "aws-sdk-rust" in self.headers.get("User-Agent", "") + self.headers.get("x-amz-user-agent", "")
        service, action = service_and_action(self.headers, body)
        if COUNT and from_paw:
            with lock, open(COUNT, "a") as count:
                count.write(f"{service} {action}\n")
        json = "X-Amz-Target" in self.headers
        digest = hashlib.sha256(self.command.encode() + self.path.encode() + body).hexdigest()
        fault, delay = draw(digest) if from_paw and ACTIONS.match(action) else (None, 0)
        if from_paw and action == "DescribeImages" and self.too_new(body):
            fault = "lag"
        if fault and LOG:
            with lock, open(LOG, "a") as log:
                log.write(f"{fault} {service} {action}\n")
        if fault == "lag":
            return self.answer_error(False, 400, "lag")
        if fault == "throttle":
            return self.answer_error(json, 400 if json else 503, "throttle")
        if fault == "error":
            return self.answer_error(json, 500, "error")
        if fault == "deny":
            return self.answer_error(json, 403, "deny")
        if fault == "drop":
            self.close_connection = True
            return
        if fault == "delay":
            time.sleep(delay)
        token = None if json or not from_paw else urllib.parse.parse_qs(body.decode()).get("ClientToken", [None])[0]
        with lock:
            replayed = answered.get((action, token)) if token else None
        status, headers, answer = replayed or self.forward(body)
        if token and status == 200:
            with lock:
                answered.setdefault((action, token), (status, headers, answer))
        if from_paw and service == "dynamodb" and status == 200:
            answer = self.index_lag(action, body, answer)
        if not replayed and action in ("CreateImage", "CopyImage", "RegisterImage"):
            for ami_id in re.findall(rb"<imageId>(ami-[0-9a-f]+)</imageId>", answer):
                born[ami_id.decode()] = time.time()
        if fault == "lost":
            self.close_connection = True
            return
        self.send_response(status)
        for name, value in headers:
            # The checksum of an answer index_lag may have changed is left out.
            if name.lower() not in ("transfer-encoding", "connection", "content-length", "x-amz-crc32"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def index_lag(self, action, body, answer):
        """Notes when paw put an item; leaves items put less than INDEX_LAG ago out of a Query on an index."""
        request = jsonlib.loads(body or b"{}")
        if action == "PutItem":
            item = request.get("Item", {})
            key = (item.get("workflow_id", {}).get("S"), item.get("step_id", {}).get("S"))
            with lock:
                put[key] = time.time()
            return answer
        if action != "Query" or "IndexName" not in request:
            return answer
        result = jsonlib.loads(answer)
        items = result.get("Items", [])
        with lock:
            seen = [item for item in items
                    if time.time() - put.get((item.get("workflow_id", {}).get("S"), item.get("step_id", {}).get("S")), 0)
                    >= INDEX_LAG]
        if len(seen) == len(items):
            return answer
        if LOG:
            with lock, open(LOG, "a") as log:
                log.write("lag dynamodb Query\n")
        result["Items"], result["Count"] = seen, len(seen)
        return jsonlib.dumps(result).encode()

    def too_new(self, body):
        """Whether the request asks, by id, for an AMI made less than LAG seconds ago."""
        params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        ids = [value for name, values in params.items() if name.startswith("ImageId.") for value in values]
        return any(time.time() - born.get(ami_id, 0) < LAG for ami_id in ids)

    def forward(self, body):
        connection = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=120)
        headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
        headers["Host"] = UPSTREAM.netloc
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        connection.close()
        return response.status, response.getheaders(), answer

    def answer_error(self, json, status, kind):
        """An error in the service's own shape: JSON (DynamoDB, SSM) or EC2's XML."""
        if json:
            code = {"throttle": "ThrottlingException", "deny": "AccessDeniedException"}.get(kind, "InternalServerError")
            body = ('{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":"injected %s"}' % (code, kind)).encode()
            content_type = "application/x-amz-json-1.0"
        else:
            code = {"throttle": "RequestLimitExceeded", "lag": "InvalidAMIID.NotFound", "deny": "UnauthorizedOperation"}.get(
                kind, "InternalError"
            )
            body = (
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>%s</Code>"
                "<Message>injected %s</Message></Error></Errors><RequestID>fault</RequestID></Response>" % (code, kind)
            ).encode()
            content_type = "text/xml"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(sys.argv[1], "w") as port_file:
    port_file.write(str(server.server_address[1]))
server.serve_forever()
