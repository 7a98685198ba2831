"""Makes a KMS key with an alias in another account of the emulator, as that account (STS
AssumeRole): python make_key.py ENDPOINT ACCOUNT REGION ALIAS; prints the key's id."""

import sys

from as_account import client

endpoint, account, region, alias = sys.argv[1:]
kms = client("kms", endpoint, account, region)
key = kms.create_key(Description="paw's tests")["KeyMetadata"]["KeyId"]
kms.create_alias(AliasName=alias, TargetKeyId=key)
print(key)
