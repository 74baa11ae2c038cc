#!/usr/bin/env bash
# TLS and HTTP/2: Switchboard against NGINX on the same development certificate, in one run.
#   handshakes  wrk over https with `Connection: close`: a new TLS connection (full handshake) per request;
#   h2          h2load -c 10 -m 100: ten HTTP/2 connections, a hundred streams in flight on each.
# Both answer GET /healthz with the same 15-byte JSON. Prints each figure and the ratio to NGINX.
#
# Usage: benchmarks/tls-http2.sh [seconds=10]
# Needs: nginx, wrk, h2load (installed with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
work=$(mktemp -d)
source benchmarks/lib.sh
command -v nginx >/dev/null && command -v wrk >/dev/null && command -v h2load >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq nginx-light wrk nghttp2-client >/dev/null; }

# Switchboard makes the certificate; NGINX serves the same one.
tls_port=$(free_port)
start_switchboard --tls-self-signed --tls-listen "127.0.0.1:$tls_port" --event-loops 2
certificate="$work/data/tls/self-signed-cert.pem"
key="$work/data/tls/self-signed-key.pem"

nginx_port=$(free_port)
start_nginx <<BLOCK
    server {
        listen 127.0.0.1:$nginx_port ssl http2;
        ssl_certificate $certificate;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        http2_max_concurrent_streams 100;
        keepalive_requests 100000000;  # NGINX ends a connection after 1000 requests by default
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
    }
BLOCK
wait_for "https://127.0.0.1:$nginx_port/healthz" -k

# h2load against URL, the server's PIDs after `--` → "req/s mean-ms max-ms failed cpu-s-per-100k".
streams() {
    local url=$1 before after result
    shift 2
    before=$(cpu_seconds "$@")
    result=$(h2load -c 10 -m 100 -t 2 -D "$seconds" --warm-up-time 1 "$url" | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^finished in/ { rps = $4 + 0 } /^time for request:/ { max = ms($5); mean = ms($6) }
        /succeeded,/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^failed,/) failed = $i; if ($(i+1) ~ /^succeeded,/) done = $i } }
        END { printf "%.0f %.3f %.3f %s %d\n", rps, mean, max, failed, done }')
    after=$(cpu_seconds "$@")
    read -r rps mean max failed done <<< "$result"
    echo "$rps $mean $max $failed $(cpu_per "$before" "$after" "$done" 100000)"
}

read -r nginx_hs nginx_hs_cpu < <(wrk_connections "${seconds}s" "https://127.0.0.1:$nginx_port/healthz" -- "$(pid_of nginx)")
read -r sb_hs sb_hs_cpu < <(wrk_connections "${seconds}s" "https://127.0.0.1:$tls_port/healthz" -- "$server")
read -r nginx_rps nginx_mean nginx_max nginx_failed nginx_cpu < <(streams "https://127.0.0.1:$nginx_port/healthz" -- "$(pid_of nginx)")
read -r sb_rps sb_mean sb_max sb_failed sb_cpu < <(streams "https://127.0.0.1:$tls_port/healthz" -- "$server")

row() { printf "%-44s %12s %12s %8s\n" "$@"; }
row "measure (${seconds}s each)" "nginx" "switchboard" "ratio"
row "TLS handshakes/s (new connection per request)" "$nginx_hs" "$sb_hs" "$(ratio "$sb_hs" "$nginx_hs")"
row "  CPU s / 1k handshakes" "$nginx_hs_cpu" "$sb_hs_cpu" "$(ratio "$sb_hs_cpu" "$nginx_hs_cpu")"
row "HTTP/2 req/s (h2load -c 10 -m 100)" "$nginx_rps" "$sb_rps" "$(ratio "$sb_rps" "$nginx_rps")"
row "  CPU s / 100k HTTP/2 requests" "$nginx_cpu" "$sb_cpu" "$(ratio "$sb_cpu" "$nginx_cpu")"
row "HTTP/2 mean / max request time ms" "$nginx_mean/$nginx_max" "$sb_mean/$sb_max" ""
row "HTTP/2 failed requests" "$nginx_failed" "$sb_failed" ""
