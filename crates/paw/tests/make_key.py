"""Makes a KMS key with an alias in an account of the emulator, as that account (STS AssumeRole):
python make_key.py ENDPOINT ACCOUNT REGION ALIAS [KEY_SPEC]; prints the key's id. With a KEY_SPEC
(ECC_NIST_P256), a signing key."""

import sys

from as_account import client

endpoint, account, region, alias, *spec = sys.argv[1:]
kms = client("kms", endpoint, account, region)
signing = dict(KeySpec=spec[0], KeyUsage="SIGN_VERIFY") if spec else {}
key = kms.create_key(Description="paw's tests", **signing)["KeyMetadata"]["KeyId"]
kms.create_alias(AliasName=alias, TargetKeyId=key)
print(key)
