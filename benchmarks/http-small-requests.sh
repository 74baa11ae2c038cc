#!/usr/bin/env bash
# Small-request throughput: Switchboard under each execution model against NGINX answering the same
# 15-byte JSON, both driven by wrk with the same threads, connections and duration, in one run; then
# Switchboard's default model once more with its access log on, written to a file, for what it costs.
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
# The three execution models with the access log off, then the default one with it on (to a file).
for run in single shared-listener reuseport access-log; do
    model=$run access_log=off label="switchboard $run"
    [ "$run" = access-log ] && model=shared-listener access_log=on label="switchboard, access log on"
    port=$(free_port)
    "$binary" serve --listen "127.0.0.1:$port" --data "$work/data-$run" --execution-model "$model" \
        --event-loops 2 --access-log "$access_log" --log-level info 2>"$work/log-$run" &
    track "$run"
    wait_for "http://127.0.0.1:$port/healthz"
    read -r rps p50 p99 cpu < <(measure "http://127.0.0.1:$port/healthz" -- "$(pid_of "$run")")
    stop "$run"
    row "$label" "$rps" "$p50" "$p99" "$(ratio "$rps" "$nginx_rps")" "$cpu" \
        "$(ratio "$cpu" "$nginx_cpu")"
    [ "$run" = shared-listener ] && shared_rps=$rps
    [ "$run" = access-log ] && echo "the access log costs $(python3 -c "print(f'{(1 - $rps / $shared_rps) * 100:.0f}')") % of shared-listener's throughput"
done
