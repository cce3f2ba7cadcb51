#!/bin/sh
# The python tier: runs pytest (tests/python) and appends "python: N passed, N failed"
# to RESULTS/summary, as tests/run-tier.sh does for binaries. pytest's own summary
# line is printed; on failure the end of its log too. Any non-zero pytest exit fails
# the tier, including 5 (no tests collected). Runs under `timeout` like every tier.
# Usage: run.sh RESULTS   (env: PYTHON, PYTHONPATH, STRATA_SERVER_BIN)
results=$1
mkdir -p "$results/logs"
log="$results/logs/python-pytest.log"
limit=${STRATA_TEST_TIMEOUT:-900}
here=$(dirname "$0")
if timeout -k 10 "$limit" "${PYTHON:-/usr/bin/python3}" -m pytest -p no:cacheprovider -rfE -v \
    "$here" >"$log" 2>&1; then rc=0; else rc=$?; fi
[ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "pytest: timed out after ${limit} s (STRATA_TEST_TIMEOUT)" >>"$log"
line=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* =+$' "$log" | tail -n 1)
count() { echo "$line" | sed -n "s/.* \([0-9][0-9]*\) $1.*/\1/p" | head -n 1; }
p=$(count passed); f=$(count failed); e=$(count error)
p=${p:-0}; f=$(( ${f:-0} + ${e:-0} ))
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
if [ $rc -eq 0 ]; then
  echo "  ok    python pytest ($p) ${line:+: $line}"
else
  echo "  FAIL  python pytest (exit $rc), log: $log"
  tail -n 60 "$log" | sed 's/^/        /'
fi
echo "python: $p passed, $f failed" | tee -a "$results/summary"
[ $rc -eq 0 ] && [ "$f" -eq 0 ] && [ "$p" -gt 0 ]
