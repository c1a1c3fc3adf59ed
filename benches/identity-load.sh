#!/usr/bin/env bash
# What identity and access cost on the request path, in CPU µs per request on the gateway's
# pinned core: the same keep-alive GET through the gateway on an anonymous route; on a route
# that needs a verified ES256 token with MFA, one token for all requests (served from the
# verified-token cache); with a new token on every request (each verified: the uncached cost);
# on a FHIR route (scope, patient and purpose derived and checked: the subject's own read); and
# a registered recipient's read of the same (provision consent checked, and a durable
# third-party record written before each response is released). The load harness (../shared/tools/proxy-bench.sh) sends no Authorization
# header, so identity is measured here, the same way: wrk on core 0, the gateway alone on core 1.
#
#   benches/identity-load.sh            # needs nginx (upstream) and wrk; 8 s per run
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PHR_GATEWAY_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/phr-gateway}
[ -x "$bin" ] || (cd "$here" && cargo build --release --quiet)
command -v nginx >/dev/null && command -v wrk >/dev/null || { echo "needs nginx and wrk" >&2; exit 1; }
t=$(mktemp -d)
chmod 755 "$t"   # nginx workers read the files
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; nginx -c "$t/nginx.conf" -s stop 2>/dev/null; rm -rf "$t"' EXIT
up=${PB_UPSTREAM_PORT:-21999}; gw=${PB_PORT:-21600}; demo=${PB_DEMO_PORT:-21700}

# The demo makes development certificates; keep them.
"$bin" demo --state-dir "$t/demo" --listen 127.0.0.1:$demo --redirect 127.0.0.1:$((demo + 1)) \
  --backend 127.0.0.1:$((demo + 2)) >/dev/null 2>&1 &
for _ in $(seq 50); do [ -s "$t/demo/certs/server.key" ] && break; sleep 0.1; done
kill %1; wait %1 2>/dev/null || true
# Distinct tokens (an issuer key and JWKS of their own): the first for the cached run, all of
# them in turn for the uncached one.
(cd "$here" && cargo run --release --quiet --example mint_tokens -- ${PB_TOKENS:-60000} "$t/tokens.txt" "$t/mint-jwks.json" "$t/clinic.txt")
token=$(head -n 1 "$t/tokens.txt")
clinic=$(cat "$t/clinic.txt")
# header script NAME TOKEN PURPOSE: a wrk script sending both headers.
headers() {
  printf 'wrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["PHR-Purpose"] = "%s"\n' "$2" "$3" > "$t/$1.lua"
}
headers own "$token" self-management
headers clinic "$clinic" treatment
cat > "$t/rotate.lua" <<LUA
local tokens = {}
for line in io.lines("$t/tokens.txt") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/mint/index.html", { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA

mkdir -p "$t/www/anon" "$t/www/mint" "$t/www/fhir" && head -c 1024 /dev/zero | tr '\0' x > "$t/www/index.html"
cp "$t/www/index.html" "$t/www/anon/index.html"
cp "$t/www/index.html" "$t/www/mint/index.html"
cp "$t/www/index.html" "$t/www/fhir/Observation"
cat > "$t/nginx.conf" <<NGINX
worker_processes 1; daemon on; pid $t/nginx.pid; error_log $t/nginx.err;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$up; root $t/www; keepalive_requests 1000000; } }
NGINX
taskset -c 0 nginx -c "$t/nginx.conf"

cat > "$t/policy.toml" <<TOML
[gateway]
node_id = "bench"
worker_threads = 1
drain_secs = 0
shutdown_timeout_secs = 1
[listeners]
public = "127.0.0.1:$gw"
[tls]
certificate_chain = "$t/demo/certs/server.crt"
private_key = "$t/demo/certs/server.key"
watch_interval_secs = 0
[audit]
dir = "$t/audit"
signing_key = "$t/audit.key"
[[issuers]]
id = "minted"
issuer = "https://issuer.demo.phr-gateway.local"
audiences = ["phr-demo"]
algorithms = ["ES256"]
jwks_file = "$t/mint-jwks.json"
[identity]
session_idle_secs = 3600
[upstreams.b]
url = "http://127.0.0.1:$up"
[[routes]]
id = "anonymous"
methods = ["GET"]
path = "/anon/{*rest}"
upstream = "b"
category = "public"
anonymous = true
[[routes]]
id = "fhir"
methods = ["GET"]
path = "/fhir/{*rest}"
upstream = "b"
category = "checkup"
fhir = "/fhir"
purposes = ["self-management", "treatment"]
[[purposes]]
id = "self-management"
ja = "本人による健康管理"
en = "Own health management"
[[purposes]]
id = "treatment"
ja = "診療"
en = "Treatment"
[[recipients]]
id = "bench-clinic"
name = "Bench clinic"
clients = ["bench-clinic"]
compliance_confirmed = $(date -u +%F)
recheck_days = 30
[[routes]]
id = "token"
methods = ["GET"]
path = "/{*rest}"
upstream = "b"
category = "checkup"
TOML
PHR_LOG=warn taskset -c 1 "$bin" run --policy "$t/policy.toml" 2>"$t/gw.err" &
pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$gw) 2>/dev/null && break; sleep 0.1; done
ca="$t/demo/certs/ca.crt"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $token" "https://127.0.0.1:$gw/index.html")
[ "$code" = 200 ] || { echo "token request answered $code, not 200" >&2; cat "$t/gw.err" >&2; exit 1; }

# bench-0 consents to provide checkup data to the clinic for treatment.
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' \
  -d '{"kind":"provision","recipient":"bench-clinic","purpose":"treatment","categories":["checkup"]}' \
  "https://127.0.0.1:$gw/.phr/consents")
[ "$code" = 201 ] || { echo "provision consent answered $code, not 201" >&2; exit 1; }
for who in own clinic; do
  bearer=$token; purpose=self-management
  [ $who = clinic ] && bearer=$clinic && purpose=treatment
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $bearer" \
    -H "PHR-Purpose: $purpose" "https://127.0.0.1:$gw/fhir/Observation?patient=bench-0")
  [ "$code" = 200 ] || { echo "$who FHIR read answered $code, not 200" >&2; cat "$t/gw.err" >&2; exit 1; }
done

run() { # name path [header | lua:SCRIPT]
  local before after n
  before=$(awk '{print $14+$15}' /proc/$pid/stat)
  case "${3:-}" in
    "") taskset -c 0 wrk -t1 -c64 -d8s "https://127.0.0.1:$gw$2" > "$t/wrk.txt" ;;
    lua:*) taskset -c 0 wrk -t1 -c64 -d8s -s "${3#lua:}" "https://127.0.0.1:$gw$2" > "$t/wrk.txt" ;;
    *) taskset -c 0 wrk -t1 -c64 -d8s -H "$3" "https://127.0.0.1:$gw$2" > "$t/wrk.txt" ;;
  esac
  after=$(awk '{print $14+$15}' /proc/$pid/stat)
  n=$(awk '/requests in/ {print $1}' "$t/wrk.txt")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$t/wrk.txt")
  printf '%-28s %8s req  %6.1f µs/req  non-2xx: %s\n' "$1" "$n" "$(echo "($after - $before) * 10000 / $n" | bc -l)" "${non2xx:-0}"
}
run "anonymous route" /anon/index.html
run "ES256 token, MFA, cached" /index.html "Authorization: Bearer $token"
run "ES256, new token each time" /mint/index.html "lua:$t/rotate.lua"
run "FHIR read, own data" "/fhir/Observation?patient=bench-0" "lua:$t/own.lua"
run "FHIR read, recipient" "/fhir/Observation?patient=bench-0" "lua:$t/clinic.lua"
echo "third-party records written: $(cat "$t"/audit/state/*.jsonl | grep -c third_party_record)"
