#!/usr/bin/env sh
# One build job of the matrix: every job runs this same script against one DynamoDB catalog. The
# steps' leases split the tree between the jobs: a step one job builds, the others wait for and use;
# nothing is built twice. Needs PAW_CATALOG (dynamodb:TABLE) and PAW_WORKFLOW_ID (one per commit).
set -eu
paw="${PAW:-paw}"
workflow="${PAW_WORKFLOW_DIR:-workflow}"
: "${PAW_CATALOG:?set PAW_CATALOG to dynamodb:TABLE}"
: "${PAW_WORKFLOW_ID:?set PAW_WORKFLOW_ID, e.g. to the commit}"
exec "$paw" -w "$workflow" build --jobs "${PAW_JOBS:-2}"
