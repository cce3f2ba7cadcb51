#!/bin/sh
# Runs each libFuzzer target for FUZZ_SECONDS (or, when FUZZ_RUNS is set, until
# it has executed FUZZ_RUNS inputs) from a corpus seeded with valid encodings
# (BUILD/fuzz/tests/fuzz/seeds writes them), and appends
# "fuzz: N passed, N failed" to RESULTS/summary. A crash, a sanitizer report or
# a leak fails the target; the reproducer is kept under RESULTS/fuzz-artifacts.
# Usage: run.sh RESULTS FUZZ_BUILD_DIR TARGET...
results=$1; dir=$2; shift 2
secs=${FUZZ_SECONDS:-30}
if [ -n "$FUZZ_RUNS" ]; then limit="-runs=$FUZZ_RUNS"; outer=14400
else limit="-max_total_time=$secs"; outer=$((secs + 120)); fi
mkdir -p "$results/logs" "$results/fuzz-artifacts"
corpus_root="$dir/corpus"
rm -rf "$corpus_root" && mkdir -p "$corpus_root"
"$dir/tests/fuzz/seeds" "$corpus_root" || { echo "fuzz: seed generator failed"; echo "fuzz: 0 passed, 1 failed" >>"$results/summary"; exit 1; }
passed=0; failed=0
for t in "$@"; do
  [ "$t" = seeds ] && continue
  mkdir -p "$corpus_root/$t"
  log="$results/logs/fuzz-$t.log"
  # The per-service RPC targets keep a server between inputs, so nearly every
  # input allocates for good (node cache, lock rows) and libFuzzer's per-input
  # leak check would scan the whole server heap each time (measured 30x
  # slower); LSan still checks for leaks once, when the run ends.
  case $t in fuzz_svc_*) leaks=-detect_leaks=0 ;; *) leaks= ;; esac
  start=$(date +%s)
  # libFuzzer stops itself; the outer timeout catches a target that hangs
  # outside an input (start-up, teardown): the run's time plus 120 s, or 4 hours
  # for a FUZZ_RUNS run.
  if timeout -k 10 "$outer" "$dir/tests/fuzz/$t" $limit $leaks -rss_limit_mb=2048 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$results/fuzz-artifacts/$t-" \
       "$corpus_root/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "  ok    fuzz $t ($runs runs in $(( $(date +%s) - start ))s, 0 crashes)"
    passed=$((passed + 1))
  else
    echo "  FAIL  fuzz $t, log: $log"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20 | sed 's/^/        /'
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed" | tee -a "$results/summary"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
