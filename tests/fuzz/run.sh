#!/bin/sh
# Runs each libFuzzer target for FUZZ_SECONDS from a corpus seeded with valid
# encodings (BUILD/fuzz/tests/fuzz/seeds writes them), and appends
# "fuzz: N passed, N failed" to RESULTS/summary. A crash, a sanitizer report or
# a leak fails the target; the reproducer is kept under RESULTS/fuzz-artifacts.
# Usage: run.sh RESULTS FUZZ_BUILD_DIR TARGET...
results=$1; dir=$2; shift 2
secs=${FUZZ_SECONDS:-30}
mkdir -p "$results/logs" "$results/fuzz-artifacts"
corpus_root="$dir/corpus"
rm -rf "$corpus_root" && mkdir -p "$corpus_root"
"$dir/tests/fuzz/seeds" "$corpus_root" || { echo "fuzz: seed generator failed"; echo "fuzz: 0 passed, 1 failed" >>"$results/summary"; exit 1; }
passed=0; failed=0
for t in "$@"; do
  [ "$t" = seeds ] && continue
  mkdir -p "$corpus_root/$t"
  log="$results/logs/fuzz-$t.log"
  # libFuzzer stops itself after max_total_time; the outer timeout catches a
  # target that hangs outside an input (start-up, teardown).
  if timeout -k 10 $((secs + 120)) "$dir/tests/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$results/fuzz-artifacts/$t-" \
       "$corpus_root/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "  ok    fuzz $t ($runs runs in ${secs}s)"
    passed=$((passed + 1))
  else
    echo "  FAIL  fuzz $t, log: $log"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20 | sed 's/^/        /'
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed" | tee -a "$results/summary"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
