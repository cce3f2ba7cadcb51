#!/bin/sh
# Runs the test binaries of one tier and appends "TIER: N passed, N failed" to
# RESULTS/TIER. A cmocka binary counts its own test cases; any other binary
# counts as one test. A binary that exits non-zero fails the tier even when it
# printed no failure. Every binary runs under `timeout` (STRATA_TEST_TIMEOUT
# seconds, default 900): a hang fails the tier naming the binary instead of
# eating CI's time; the binary gets SIGTERM, then SIGKILL 10 s later.
# Usage: run-tier.sh TIER RESULTS BIN...
tier=$1; results=$2; shift 2
mkdir -p "$results/logs"
passed=0; failed=0
limit=${STRATA_TEST_TIMEOUT:-900}
for bin in "$@"; do
  name=$(basename "$bin")
  log="$results/logs/$tier-$name.log"
  if timeout -k 10 "$limit" "$bin" >"$log" 2>&1; then rc=0; else rc=$?; fi
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "$name: timed out after ${limit} s (STRATA_TEST_TIMEOUT)" >>"$log"
  p=$(sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/.*\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    if [ $rc -eq 0 ]; then p=1; else f=1; fi
  elif [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
  fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ $rc -eq 0 ]; then
    echo "  ok    $tier $name ($p)"
  else
    echo "  FAIL  $tier $name (exit $rc), log: $log"
    tail -n 40 "$log" | sed 's/^/        /'
  fi
done
echo "$tier: $passed passed, $failed failed" | tee -a "$results/summary"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
