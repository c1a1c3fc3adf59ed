#!/usr/bin/env bash
# Starts phr-gateway in the foreground for ../shared/tools/proxy-bench.sh, from the
# environment that harness exports: PB_CERT, PB_KEY, PB_UPSTREAM (host:port), PB_PORT.
#
#   ../shared/tools/proxy-bench.sh --out r.json --gateway benches/proxy-bench-gateway.sh 20090
#
# Mode (PB_MODE, default "routing"):
#   routing  every path is routed (default deny table with one catch-all anonymous route),
#            hardening on, and the audit store (every policy has one: each request's record
#            is written before its response is released): what the core gateway costs.
#   full     everything on the request path that exists today. Steps add themselves here as
#            they land (access, inspection), so the whole cost is measured the same way. Today
#            "full" adds a realistic table of 1,000 declared routes in front of the catch-all,
#            the served host names ([listeners] hosts: wrk's Host, 127.0.0.1, is one of them),
#            network rules (a 64-entry deny list, a trusted proxy, a per-route allow list) and
#            rate limits per client and per route, set high enough never to refuse the
#            benchmark (the check is the cost). Identity has its own load script
#            (benches/identity-load.sh: a token per request needs a token-minting client).
#            Connection tracking (limits and deadlines) and metrics are on in every mode.
#   bare     not the gateway: pingora with rustls and nothing else (examples/bare_pingora.rs),
#            the floor under every gateway number, measured in the same run.
# PB_AUDIT_DURABILITY (default "batched") sets audit.access_durability; "durable" syncs each
# access record (group commit) before its response is released. PB_AUDIT_ON_FAILURE (default
# "fail_closed") sets audit.on_audit_failure; "degrade" does not wait for the record, which
# measures what waiting costs (docs/performance.md), not a way to run.
# One worker thread: the harness pins the gateway to one core.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${PB_MODE:-routing}" = bare ]; then
  bare=${CARGO_TARGET_DIR:-$here/target}/release/examples/bare_pingora
  if [ ! -x "$bare" ]; then
    (cd "$here" && cargo build --release --quiet --example bare_pingora)
  fi
  : "${PB_CERT:?} ${PB_KEY:?} ${PB_UPSTREAM:?} ${PB_PORT:?}"
  exec "$bare"
fi
bin=${PHR_GATEWAY_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/phr-gateway}
if [ ! -x "$bin" ]; then
  (cd "$here" && cargo build --release --quiet)
fi
: "${PB_CERT:?} ${PB_KEY:?} ${PB_UPSTREAM:?} ${PB_PORT:?}"
mode=${PB_MODE:-routing}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
policy=$dir/policy.toml
cat > "$policy" <<TOML
[gateway]
node_id = "bench"
worker_threads = 1
drain_secs = 0
shutdown_timeout_secs = 1

[listeners]
public = "127.0.0.1:$PB_PORT"
$([ "$mode" = full ] && echo 'hosts = ["127.0.0.1", "localhost"]')

[tls]
certificate_chain = "$PB_CERT"
private_key = "$PB_KEY"
watch_interval_secs = 0

[audit]
dir = "$dir/audit"
signing_key = "$dir/audit-signing.key"
access_durability = "${PB_AUDIT_DURABILITY:-batched}"
on_audit_failure = "${PB_AUDIT_ON_FAILURE:-fail_closed}"

[upstreams.bench]
url = "http://$PB_UPSTREAM"
TOML
# route ID PATH METHODS: append one anonymous route to the policy.
route() {
  printf '\n[[routes]]\nid = "%s"\nmethods = %s\npath = "%s"\nupstream = "bench"\ncategory = "public"\nanonymous = true\n' \
    "$1" "$3" "$2" >> "$policy"
}
if [ "$mode" = full ]; then
  {
    printf '\n[network]\ntrusted_proxies = ["10.255.0.1"]\ndeny = ['
    for i in $(seq 0 63); do printf '"198.18.%d.0/24", ' "$i"; done
    printf '"2001:db8:dead::/48"]\n'
    printf '\n[limits]\nper_client = { requests = 10000000, per_secs = 1 }\nper_subject = { requests = 10000000, per_secs = 1 }\n'
  } >> "$policy"
  n=0
  for i in $(seq 0 249); do
    for shape in "/fhir/Type$i/{id}" "/fhir/Type$i" "/fhir/Type$i/{id}/_history" "/fhir/Type$i/{id}/Observation"; do
      n=$((n + 1))
      route "r$n" "$shape" '["GET", "POST"]'
    done
  done
fi
# `{*rest}` needs at least one character, so "/" has its own route.
all='["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]'
route everything '/{*rest}' "$all"
if [ "$mode" = full ]; then
  printf 'allow_from = ["127.0.0.0/8", "::1/128"]\nrate_limit = { requests = 10000000, per_secs = 1 }\n' >> "$policy"
fi
route root / "$all"
export PHR_LOG=${PHR_LOG:-warn}
exec "$bin" run --policy "$policy"
