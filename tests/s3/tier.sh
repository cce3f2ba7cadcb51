#!/bin/sh
# The s3 tier (`make test-s3`): starts Ceph's radosgw once on loopback (tests/s3/rgw.py) under a
# fresh directory, runs tests/run-tier.sh s3 RESULTS BIN... with the endpoint, bucket and keys of
# DIR/env in the environment, and stops Ceph when done, failed or interrupted. Ceph that does not
# start fails the tier with the reason (one result line), it is never skipped.
# Usage: tier.sh RESULTS BIN...
results=$1; shift
here=$(dirname "$0")
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-rgw.XXXXXX") && rmdir "$dir" || exit 1
stop() {
  status=$?
  [ -e "$dir" ] && "${PYTHON:-/usr/bin/python3}" "$here/rgw.py" stop "$dir"
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$results"
limit=${RGW_START_TIMEOUT:-300}
timeout -k 60 "$limit" "${PYTHON:-/usr/bin/python3}" "$here/rgw.py" start "$dir" 2>"$results/rgw-start.err"
rc=$?
if [ $rc -ne 0 ]; then
  cat "$results/rgw-start.err" >&2
  reason=$(grep '^rgw: ' "$results/rgw-start.err" | tail -n 1 | cut -c1-300)
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then reason="Ceph did not start within $limit s; $reason"; fi
  echo "s3: 0 passed, 1 failed (${reason:-rgw.py start exited $rc})" | tee -a "$results/summary"
  exit 1
fi
set -a
. "$dir/env"
set +a
export RGW_DIR="$dir"
sh "$here/../run-tier.sh" s3 "$results" "$@"
