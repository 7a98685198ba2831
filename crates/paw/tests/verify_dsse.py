"""A verifier outside paw: DSSE's pre-authentication encoding and the signature, checked with
Python's `cryptography` against the public key paw exported.

Usage: verify_dsse.py EXPORT_JSON   (paw images provenance STEP --json: envelope and public_key)
Prints the statement's subject name and exits 0 when a signature verifies; exits 1 otherwise.
"""

import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

exported = json.load(open(sys.argv[1]))
envelope = exported["envelope"]
key = serialization.load_pem_public_key(exported["public_key"].encode())
payload = base64.b64decode(envelope["payload"])
payload_type = envelope["payloadType"]
pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
for signature in envelope["signatures"]:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(base64.b64decode(signature["sig"]), pae)
        elif isinstance(key, rsa.RSAPublicKey):
            # KMS's RSASSA_PSS_SHA_256: MGF1 with SHA-256; the salt's length as the signer chose
            # (KMS: the digest's; the emulator: the longest).
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(base64.b64decode(signature["sig"]), pae, pss, hashes.SHA256())
        else:
            key.verify(base64.b64decode(signature["sig"]), pae, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        continue
    print(json.loads(payload)["subject"][0]["name"])
    sys.exit(0)
sys.exit("no signature verifies")
