#!/bin/sh
# bench-etcd.sh STRATA_BENCH STRATA_SERVER DIR: `make bench-etcd`. Starts etcd (Debian's
# /usr/bin/etcd, or $ETCD_BIN) and strata-server on 127.0.0.1, each on free ports and a
# fresh data directory under DIR, runs `strata-bench --etcd` against both, and stops
# both by PID when done, failed or interrupted. $BENCH_RUNS runs of $BENCH_SECONDS
# per figure and server. etcd keeps its defaults: its WAL is fsynced on every commit.
set -eu
bench=$1 server=$2 dir=$3
runs=${BENCH_RUNS:-3}
seconds=${BENCH_SECONDS:-2}
etcd=${ETCD_BIN:-/usr/bin/etcd}

etcd_pid="" srv_pid=""
# SIGTERM to each of our two servers; SIGKILL to one still there after 20 s.
stop() {
  status=$?
  for p in $etcd_pid $srv_pid; do kill "$p" 2>/dev/null || true; done
  n=0
  for p in $etcd_pid $srv_pid; do
    while kill -0 "$p" 2>/dev/null && [ "$n" -lt 200 ]; do n=$((n + 1)); sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$dir/etcd.log" "$dir/strata.log"; do
      [ -f "$log" ] && { echo "bench-etcd: last lines of $log:"; tail -n 15 "$log"; } >&2
    done
  fi
  rm -rf "$dir/etcd-data" "$dir/strata-data"
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until FILE has a line matching PATTERN (etcd: it has joined its one-member
# cluster, so it serves requests) while process PID lives (30 s at most).
wait_for_line() {
  n=0
  until grep -q "$2" "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || { echo "bench-etcd: $4 exited before it was ready" >&2; return 1; }
    n=$((n + 1))
    [ "$n" -le 300 ] || { echo "bench-etcd: $4 not ready after 30 s" >&2; return 1; }
    sleep 0.1
  done
}

# The disk quiet first: the benchmark before this one in `make bench` (bench-downsample)
# writes and deletes about 10 GB, and the writeback and discards it leaves behind stall
# fsyncs for seconds, whichever server is being measured. sync, then wait until the block
# devices complete no write and no discard for 2 s (/proc/diskstats), 60 s at most.
quiesce() {
  sync
  prev="" quiet=0 n=0
  while [ "$quiet" -lt 2 ] && [ "$n" -lt 60 ]; do
    cur=$(awk '{ n += $8 + $15 } END { print n }' /proc/diskstats)
    if [ "$cur" = "$prev" ]; then quiet=$((quiet + 1)); else quiet=0; fi
    prev=$cur n=$((n + 1))
    sleep 1
  done
  echo "bench-etcd: disk quiet after ${n} s" >&2
}

rm -rf "$dir" && mkdir -p "$dir"
quiesce
# Two ports the kernel hands out as free right now (client, peer) for etcd.
set -- $(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
cport=$1 pport=$2

"$etcd" --name bench --data-dir "$dir/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "bench=http://127.0.0.1:$pport" --initial-cluster-state new \
  --logger zap --log-outputs stderr >"$dir/etcd.log" 2>&1 &
etcd_pid=$!
"$server" --listen 127.0.0.1:0 --data-dir "$dir/strata-data" --grace-ms 0 2>"$dir/strata.log" &
srv_pid=$!
wait_for_line "$dir/etcd.log" 'published local member to cluster' "$etcd_pid" etcd
wait_for_line "$dir/strata.log" 'event=ready' "$srv_pid" strata-server
sport=$(sed -n 's/.*event=ready .*port=\([0-9]*\).*/\1/p' "$dir/strata.log")

echo "bench-etcd: $("$etcd" --version | head -n 1) (pid $etcd_pid, 127.0.0.1:$cport) and" \
  "strata-server (pid $srv_pid, 127.0.0.1:$sport); $(nproc) CPUs; $(date -u '+%Y-%m-%d %H:%M UTC')" >&2
"$bench" --addr "127.0.0.1:$sport" --etcd "127.0.0.1:$cport" --runs "$runs" --seconds "$seconds"
