# Sourced by scripts/demo and bench/rebuild: starts the local AWS API emulator in a new temporary
# folder $work, points the AWS SDK and packer at it with made-up credentials, and stops it (and
# removes $work) when the calling script exits.
work=$(mktemp -d)
.venv/bin/python scripts/moto_server.py "$work/port" 2>/dev/null &
emulator=$!
trap 'kill "$emulator" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do [ -f "$work/port" ] && break; sleep 0.1; done
[ -f "$work/port" ] || { echo "the AWS API emulator did not start" >&2; exit 1; }
export AWS_ENDPOINT_URL="http://127.0.0.1:$(cat "$work/port")"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
