#!/usr/bin/env bash
# Two builds side by side, for finding what made one slower or faster (a `git bisect run` step, or a
# change before it lands): `serve` answering GET /healthz, or `edge` proxying to one NGINX upstream.
# Short wrk runs alternate between the two for several rounds so that the machine's changing load falls
# on both alike; the median CPU seconds per 100,000 requests (from /proc/PID/stat) is the figure to
# compare, steadier than req/s.
#
# Usage: benchmarks/ab.sh serve|edge BINARY_A BINARY_B [rounds=6] [seconds=5]
# Prints per round and then the medians; exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1 a=$2 b=$3 rounds=${4:-6} seconds=${5:-5}
work=$(mktemp -d)
source benchmarks/lib.sh
needs nginx wrk

if [ "$target" = edge ]; then
    upstream=$(free_port)
    start_nginx upstream 1 <<BLOCK
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$upstream;
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
    }
BLOCK
    wait_for "http://127.0.0.1:$upstream/"
fi

declare -A port
for side in a b; do
    port[$side]=$(free_port)
    binary=$a
    [ "$side" = b ] && binary=$b
    if [ "$target" = edge ]; then
        cat > "$work/edge-$side.yaml" <<CONF
listeners:
  - {name: web, kind: http, listen: "127.0.0.1:${port[$side]}", executionModel: reuseport, routes: [{cluster: app}]}
clusters:
  - {name: app, upstreams: [{address: "127.0.0.1:$upstream"}]}
CONF
        "$binary" edge --config "$work/edge-$side.yaml" --access-log off --log-level warning &
    else
        "$binary" serve --listen "127.0.0.1:${port[$side]}" --data "$work/data-$side" --event-loops 2 \
            --access-log off --log-level warning &
    fi
    track "$side"
    wait_for "http://127.0.0.1:${port[$side]}/healthz"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf "%-6s %12s %16s %12s %16s\n" "round" "A req/s" "A CPU s / 100k" "B req/s" "B CPU s / 100k"
for round in $(seq "$rounds"); do
    row=()
    for side in a b; do
        read -r rps _ _ cpu < <(wrk_measure 2 64 "${seconds}s" "http://127.0.0.1:${port[$side]}/healthz" -- "$(pid_of "$side")")
        echo "$cpu" >> "$work/cpu-$side"
        echo "$rps" >> "$work/rps-$side"
        row+=("$rps" "$cpu")
    done
    printf "%-6s %12s %16s %12s %16s\n" "$round" "${row[@]}"
done
printf "%-6s %12s %16s %12s %16s\n" "median" "$(median < "$work/rps-a")" "$(median < "$work/cpu-a")" \
    "$(median < "$work/rps-b")" "$(median < "$work/cpu-b")"
