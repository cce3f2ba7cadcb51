#!/bin/sh
# Adds up the tier lines in RESULTS/summary and prints the closing line
# "N passed, N failed". Fails when a tier failed, or when nothing ran.
results=$1
[ -f "$results/summary" ] || { echo "no test tier ran"; echo "0 passed, 1 failed"; exit 1; }
echo "--- test tiers ---"
cat "$results/summary"
awk '{ for (i = 2; i < NF; i++) { if ($(i+1) == "passed,") p += $i; if ($(i+1) == "failed") f += $i } } END {
  printf "%d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$results/summary"
