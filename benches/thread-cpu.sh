#!/usr/bin/env bash
# CPU per keep-alive GET, thread by thread, under the load ../shared/tools/proxy-bench.sh puts
# on a proxy (wrk, one thread, 64 connections, 1 KiB answers; load and upstream on core 0, the
# proxy on core 1). Loopback only; stops by itself.
#
#   benches/thread-cpu.sh [MODE] [SECONDS]
#
# MODE is proxy-bench-gateway.sh's (routing, full, bare; default routing); SECONDS of load
# (default 8) after 3 s of warm-up that is not counted. Prints, per thread of the proxy, the
# CPU time per request and how often per request it was put on the CPU (a wake-up), then the
# total.
#
# Why not /proc/PID/task/*/stat: its utime and stime are scaled from timer ticks per thread
# and, under this load, added up to about a third less than the process's own total. The
# scheduler's run time per thread (/proc/PID/task/TID/schedstat, nanoseconds) adds up to the
# process's total exactly.
#
# Needs wrk, nginx (the upstream) and openssl (a throwaway certificate), as
# benches/callgrind-get.sh does.
set -euo pipefail
mode=${1:-routing}
seconds=${2:-8}
here=$(cd "$(dirname "$0")/.." && pwd)
for tool in wrk nginx openssl curl taskset; do
  command -v "$tool" >/dev/null || { echo "thread-cpu: $tool is missing (Debian: apt-get install wrk nginx-light openssl curl util-linux)" >&2; exit 1; }
done
tmp=$(mktemp -d)
up_port=${UP_PORT:-20299}
port=${PORT:-20298}
cleanup() {
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=bench-env.sh
. "$here/benches/bench-env.sh"
bench_certificate "$tmp"
BENCH_UPSTREAM_CPU=0 bench_upstream "$tmp" "$up_port" "$(head -c 1024 /dev/zero | tr '\0' 'a')"

export PB_CERT=$tmp/cert.pem PB_KEY=$tmp/key.pem PB_UPSTREAM=127.0.0.1:$up_port PB_PORT=$port PB_MODE=$mode
# proxy-bench-gateway.sh ends in `exec`: the pid is the proxy's.
taskset -c 1 bash "$here/benches/proxy-bench-gateway.sh" > "$tmp/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 100); do
  curl -sk -o /dev/null "https://127.0.0.1:$port/" && break
  sleep 0.2
done
curl -sk -o /dev/null "https://127.0.0.1:$port/" || { cat "$tmp/proxy.log" >&2; exit 1; }
taskset -c 0 wrk -t1 -c64 -d3s "https://127.0.0.1:$port/" > /dev/null

# name-tid, run time (ns), times put on the CPU
threads() {
  for t in /proc/"$proxy_pid"/task/*; do
    echo "$(tr ' ' _ < "$t/comm")-${t##*/} $(awk '{print $1, $3}' "$t/schedstat")"
  done | sort
}
threads > "$tmp/before"
taskset -c 0 wrk -t1 -c64 -d"${seconds}s" "https://127.0.0.1:$port/" > "$tmp/wrk.txt"
threads > "$tmp/after"
requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
echo "mode $mode: $requests requests in ${seconds} s"
join "$tmp/before" "$tmp/after" | awk -v r="$requests" '
  { ns = $4 - $2; runs = $5 - $3; total += ns
    if (ns > 0.005 * 1e9) printf "  %-28s %7.2f µs/request  %6.3f wake-ups/request\n", $1, ns / 1000 / r, runs / r }
  END { printf "  %-28s %7.2f µs/request\n", "all threads", total / 1000 / r }'
