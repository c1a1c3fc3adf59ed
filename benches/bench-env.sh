# Sourced by the benches' load scripts (callgrind-get.sh, thread-cpu.sh): the throwaway
# certificate and the nginx upstream that ../shared/tools/proxy-bench.sh would give them.

# bench_certificate DIR: an ECDSA P-256 certificate for localhost in DIR/cert.pem, DIR/key.pem.
bench_certificate() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -keyout "$1/key.pem" -out "$1/cert.pem" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
}

# bench_upstream DIR PORT ANSWER: one nginx worker on 127.0.0.1:PORT answering every request
# 200 with ANSWER (JSON), keep-alive without limit, no access log; its pid in DIR/nginx.pid.
# Runs nginx under the caller's CPU pinning, if any (set BENCH_UPSTREAM_CPU to pin it).
bench_upstream() {
  mkdir -p "$1/logs"
  cat > "$1/nginx.conf" <<NGINX
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$2;
    keepalive_requests 1000000;
    location / { default_type application/json; return 200 '$3'; }
  }
}
NGINX
  if [ -n "${BENCH_UPSTREAM_CPU:-}" ]; then
    taskset -c "$BENCH_UPSTREAM_CPU" nginx -p "$1" -c "$1/nginx.conf"
  else
    nginx -p "$1" -c "$1/nginx.conf"
  fi
}
