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
trap cleanup EXIT
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
needs wrk
swift build -c release --product switchboard >/dev/null 2>&1
binary=.build/release/switchboard

# wrk → "req/s p50 p99" (latencies in ms).
measure() {
    wrk -t"$threads" -c"$connections" -d"$duration" --latency "$1" | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
        END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}

nginx_port=$(free_port)
start_nginx <<BLOCK
    server {
        listen 127.0.0.1:$nginx_port reuseport;
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
    }
BLOCK
wait_for "http://127.0.0.1:$nginx_port/healthz"
read -r nginx_rps nginx_p50 nginx_p99 < <(measure "http://127.0.0.1:$nginx_port/healthz")
kill "$(cat "$work/nginx.pid")"; sleep 0.5

printf "%-28s %10s %9s %9s %8s\n" "server (wrk -t$threads -c$connections -d$duration)" "req/s" "p50 ms" "p99 ms" "vs nginx"
printf "%-28s %10s %9s %9s %8s\n" "nginx (2 workers)" "$nginx_rps" "$nginx_p50" "$nginx_p99" "1.00"
for model in single shared-listener reuseport; do
    port=$(free_port)
    "$binary" serve --listen "127.0.0.1:$port" --data "$work/data-$model" --execution-model "$model" \
        --event-loops 2 --access-log off --log-level warning &
    pid=$!
    wait_for "http://127.0.0.1:$port/healthz"
    read -r rps p50 p99 < <(measure "http://127.0.0.1:$port/healthz")
    kill -TERM "$pid"; wait "$pid" || true
    ratio=$(awk -v a="$rps" -v b="$nginx_rps" 'BEGIN { printf "%.2f", a / b }')
    printf "%-28s %10s %9s %9s %8s\n" "switchboard $model" "$rps" "$p50" "$p99" "$ratio"
done
