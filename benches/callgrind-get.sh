#!/usr/bin/env bash
# Instructions per keep-alive GET through the gateway, counted by callgrind: a figure that
# does not move with the machine's load or clock, for before/after comparisons of the request
# path (docs/performance.md, "Instructions per request"). Loopback only; stops by itself.
#
#   benches/callgrind-get.sh [MODE] [SECONDS]
#
# MODE is proxy-bench-gateway.sh's (routing, full, bare; default routing); SECONDS of load
# (default 15) at 8 connections from one wrk thread, after 3 s of warm-up that is not counted.
# Prints requests, instructions and instructions per request, then the gateway's own functions
# by instructions per request, and leaves the profile in $OUT (default
# /tmp/callgrind-get-MODE.out) for callgrind_annotate. With PROTO=h2 the load is HTTP/2
# (h2load, 8 connections, one stream at a time each; Debian: nghttp2-client) instead of wrk's
# HTTP/1.1.
#
# Needs valgrind, wrk, nginx (the upstream, as in ../shared/tools/proxy-bench.sh) and openssl
# (a throwaway certificate). Under valgrind the CPU has no SHA extensions, so SHA-256 (the
# audit chain and Merkle tree) runs its portable code and counts several times what it costs
# on a CPU with them; compare like with like.
set -euo pipefail
mode=${1:-routing}
seconds=${2:-15}
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/callgrind-get-$mode.out}
proto=${PROTO:-h1}
load_tool=wrk
[ "$proto" = h2 ] && load_tool=h2load
for tool in valgrind callgrind_control callgrind_annotate $load_tool nginx openssl curl; do
  command -v "$tool" >/dev/null || { echo "callgrind-get: $tool is missing (Debian: apt-get install valgrind wrk nginx-light openssl curl)" >&2; exit 1; }
done
target=${CARGO_TARGET_DIR:-$here/target}
bin=${PHR_GATEWAY_BIN:-$target/release/phr-gateway}
bare=$target/release/examples/bare_pingora
if [ "$mode" = bare ]; then
  [ -x "$bare" ] || (cd "$here" && cargo build --release --quiet --example bare_pingora)
else
  [ -x "$bin" ] || (cd "$here" && cargo build --release --quiet)
fi

tmp=$(mktemp -d)
up_port=${UP_PORT:-20199}
port=${PORT:-20198}
cleanup() {
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  [ -n "${gateway_pid:-}" ] && kill -- "-$gateway_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=bench-env.sh
. "$here/benches/bench-env.sh"
bench_certificate "$tmp"
bench_upstream "$tmp" "$up_port" '{"resourceType":"Patient","id":"p1","active":true}'

cat > "$tmp/under-callgrind" <<WRAP
#!/usr/bin/env bash
exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$tmp/callgrind.%p" "\$CALLGRIND_TARGET" "\$@"
WRAP
chmod +x "$tmp/under-callgrind"
export PB_CERT=$tmp/cert.pem PB_KEY=$tmp/key.pem PB_UPSTREAM=127.0.0.1:$up_port PB_PORT=$port PB_MODE=$mode
if [ "$mode" = bare ]; then
  CALLGRIND_TARGET=$bare setsid "$tmp/under-callgrind" > "$tmp/gateway.log" 2>&1 &
else
  CALLGRIND_TARGET=$bin PHR_GATEWAY_BIN=$tmp/under-callgrind \
    setsid bash "$here/benches/proxy-bench-gateway.sh" > "$tmp/gateway.log" 2>&1 &
fi
gateway_pid=$!
for _ in $(seq 1 240); do
  curl -sk -o /dev/null "https://127.0.0.1:$port/" && break
  sleep 0.5
done
load() {
  if [ "$proto" = h2 ]; then
    h2load -t1 -c8 -m1 -D "$1" "https://127.0.0.1:$port/"
  else
    wrk -t1 -c8 -d"${1}s" "https://127.0.0.1:$port/"
  fi
}
load 3 >/dev/null
callgrind_control -i on >/dev/null
load "$seconds" > "$tmp/load.txt"
callgrind_control -d >/dev/null
callgrind_control -i off >/dev/null
if [ "$proto" = h2 ]; then
  requests=$(awk '/^requests:/ {print $8}' "$tmp/load.txt")
else
  requests=$(grep -o '[0-9]* requests in' "$tmp/load.txt" | cut -d' ' -f1)
fi
profile=$(ls -S "$tmp"/callgrind.* | head -1)
cp "$profile" "$out"
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "mode $mode ($proto): $requests requests, $total instructions, $((total / requests)) per request"
echo "gateway functions, inclusive instructions per request:"
callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
  awk -v n="$requests" '/phr_gateway::/ && / \[/ { v = $1; gsub(",", "", v); sub(/.*phr_gateway::/, "", $0); sub(/ \[.*/, "", $0); printf "%9.0f  %s\n", v / n, $0 }' |
  head -25
