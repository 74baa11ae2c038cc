#!/usr/bin/env bash
# Small-request throughput: Switchboard under each execution model against NGINX answering the same
# 15-byte JSON, both driven by wrk with the same threads, connections and duration, in one run.
# Prints req/s, p50/p99 latency and the ratio to NGINX.
#
# Usage: benchmarks/http-small-requests.sh [duration=10s] [connections=64]
# Needs: nginx and wrk (installed with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
connections=${2:-64}
threads=2
work=$(mktemp -d)

source benchmarks/lib.sh
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
needs wrk
binary=$(switchboard_binary)

# wrk against URL, the server's PIDs after `--` → "req/s p50-ms p99-ms cpu-s-per-100k".
measure() { wrk_measure "$threads" "$connections" "$duration" "$@"; }

nginx_port=$(free_port)
start_nginx <<BLOCK
    server {
        listen 127.0.0.1:$nginx_port reuseport;
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
    }
BLOCK
wait_for "http://127.0.0.1:$nginx_port/healthz"
read -r nginx_rps nginx_p50 nginx_p99 nginx_cpu < <(measure "http://127.0.0.1:$nginx_port/healthz" -- "$(pid_of nginx)")
stop nginx

row() { printf "%-28s %10s %9s %9s %8s %17s %10s\n" "$@"; }
row "server (wrk -t$threads -c$connections -d$duration)" "req/s" "p50 ms" "p99 ms" "vs nginx" "CPU s / 100k req" "vs nginx"
row "nginx (2 workers)" "$nginx_rps" "$nginx_p50" "$nginx_p99" "1.00" "$nginx_cpu" "1.00"
for model in single shared-listener reuseport; do
    port=$(free_port)
    "$binary" serve --listen "127.0.0.1:$port" --data "$work/data-$model" --execution-model "$model" \
        --event-loops 2 --access-log off --log-level warning &
    track "$model"
    wait_for "http://127.0.0.1:$port/healthz"
    read -r rps p50 p99 cpu < <(measure "http://127.0.0.1:$port/healthz" -- "$(pid_of "$model")")
    stop "$model"
    row "switchboard $model" "$rps" "$p50" "$p99" "$(ratio "$rps" "$nginx_rps")" "$cpu" "$(ratio "$cpu" "$nginx_cpu")"
done
