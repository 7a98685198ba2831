#!/usr/bin/env bash
# The application's own provisioning. With communicator "none" (the emulator) it runs locally; on a
# real instance use a "shell" provisioner and it runs over SSH.
set -euo pipefail
echo "installing the application for ${PAW_STEP_ID:-step3}"
