#!/usr/bin/env bash
# The edge against NGINX and HAProxy, in one run, in front of the same two upstreams (an NGINX with one
# worker answering a 15-byte JSON on two ports). Each proxy gets 2 worker threads (NGINX 2 workers,
# HAProxy nbthread 2, Switchboard 2 event loops).
#   L7  wrk -t2 -c64 through each proxy: requests/s, p99, and the proxy's CPU seconds per 100,000 requests.
#   L4  Switchboard `tcp` against HAProxy `mode tcp`: connections/s (wrk, a new connection per request)
#       and bulk MiB/s (a 512 MiB download by curl).
# Prints each figure and its ratio to the best peer.
#
# Usage: benchmarks/edge-proxy.sh [duration=10s]
# Needs: nginx, haproxy, wrk (installed with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
work=$(mktemp -d)
source benchmarks/lib.sh
trap cleanup EXIT
command -v nginx >/dev/null && command -v haproxy >/dev/null && command -v wrk >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq nginx-light haproxy wrk >/dev/null; }
swift build -c release --product switchboard >/dev/null 2>&1
binary=.build/release/switchboard

# The upstreams, and a file for the bulk run. Each proxy's L4 run gets upstream ports of its own: a
# connection per request leaves ~28,000 ports in TIME_WAIT towards each upstream address, which would
# otherwise starve whichever proxy runs second.
up1=$(free_port)
up2=$(free_port)
up3=$(free_port)
up4=$(free_port)
mkdir -p "$work/www"
head -c $((512 << 20)) /dev/zero > "$work/www/bulk.bin"
start_nginx upstreams 1 <<BLOCK
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$up1;
        listen 127.0.0.1:$up2;
        listen 127.0.0.1:$up3;
        listen 127.0.0.1:$up4;
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
        location /bulk.bin { root $work/www; }
    }
BLOCK
wait_for "http://127.0.0.1:$up1/"

# CPU seconds (user + system) of the given processes so far.
cpu_seconds() {
    local ticks=0
    for pid in "$@"; do
        ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# wrk through URL, with the proxy's pids for CPU → "req/s p99-ms cpu-s-per-100k".
measure() {
    local url=$1
    shift
    local before after result
    before=$(cpu_seconds "$@")
    result=$(wrk -t2 -c64 -d"$duration" --latency "$url" | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 } /requests in/ { total = $1 }
        END { printf "%.0f %.3f %d\n", rps, p99, total }')
    after=$(cpu_seconds "$@")
    read -r rps p99 total <<< "$result"
    echo "$rps $p99 $(awk -v a="$before" -v b="$after" -v n="$total" 'BEGIN { printf "%.2f", (b - a) * 100000 / n }')"
}

connections_per_second() {
    wrk -t2 -c16 -d"$duration" -H 'Connection: close' "$1" | awk '/^Requests\/sec/ { printf "%.0f\n", $2 }'
}

bulk_mib_per_second() {
    curl -s -o /dev/null -w '%{speed_download}' "$1" | awk '{ printf "%.0f\n", $1 / 1048576 }'
}

children_and_self() { echo "$1 $(pgrep -P "$1" | tr '\n' ' ')"; }

# NGINX as the proxy.
nginx_port=$(free_port)
start_nginx proxy 2 <<BLOCK
    upstream app { server 127.0.0.1:$up1; server 127.0.0.1:$up2; keepalive 64; }
    server {
        listen 127.0.0.1:$nginx_port reuseport;
        location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
BLOCK
wait_for "http://127.0.0.1:$nginx_port/"
read -r nginx_rps nginx_p99 nginx_cpu < <(measure "http://127.0.0.1:$nginx_port/" $(children_and_self "$(cat "$work/proxy.pid")"))
kill "$(cat "$work/proxy.pid")"

# HAProxy, L7 and L4 in one process.
haproxy_port=$(free_port)
haproxy_tcp_port=$(free_port)
cat > "$work/haproxy.cfg" <<CONF
global
    nbthread 2
    maxconn 4096
defaults
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend web
    mode http
    bind 127.0.0.1:$haproxy_port
    default_backend app
backend app
    mode http
    balance roundrobin
    server a 127.0.0.1:$up1
    server b 127.0.0.1:$up2
listen tcp
    mode tcp
    bind 127.0.0.1:$haproxy_tcp_port
    balance roundrobin
    server a 127.0.0.1:$up1
    server b 127.0.0.1:$up2
CONF
haproxy -f "$work/haproxy.cfg" -D -p "$work/haproxy.pid"
wait_for "http://127.0.0.1:$haproxy_port/"
read -r haproxy_rps haproxy_p99 haproxy_cpu < <(measure "http://127.0.0.1:$haproxy_port/" "$(cat "$work/haproxy.pid")")
haproxy_cps=$(connections_per_second "http://127.0.0.1:$haproxy_tcp_port/")
haproxy_bulk=$(bulk_mib_per_second "http://127.0.0.1:$haproxy_tcp_port/bulk.bin")
kill "$(cat "$work/haproxy.pid")"

# The edge.
edge_port=$(free_port)
edge_tcp_port=$(free_port)
cat > "$work/edge.yaml" <<CONF
listeners:
  - {name: web, kind: http, listen: "127.0.0.1:$edge_port", executionModel: reuseport, routes: [{cluster: app}]}
  - {name: tcp, kind: tcp, listen: "127.0.0.1:$edge_tcp_port", cluster: app-l4}
clusters:
  - name: app
    upstreams: [{address: "127.0.0.1:$up1"}, {address: "127.0.0.1:$up2"}]
  - name: app-l4
    upstreams: [{address: "127.0.0.1:$up3"}, {address: "127.0.0.1:$up4"}]
CONF
"$binary" edge --config "$work/edge.yaml" --access-log off --log-level warning &
edge_pid=$!
wait_for "http://127.0.0.1:$edge_port/"
read -r edge_rps edge_p99 edge_cpu < <(measure "http://127.0.0.1:$edge_port/" "$edge_pid")
edge_cps=$(connections_per_second "http://127.0.0.1:$edge_tcp_port/")
edge_bulk=$(bulk_mib_per_second "http://127.0.0.1:$edge_tcp_port/bulk.bin")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
best_rps=$(( nginx_rps > haproxy_rps ? nginx_rps : haproxy_rps ))
printf "%-34s %10s %9s %16s\n" "L7 (wrk -t2 -c64 -d$duration)" "req/s" "p99 ms" "CPU s / 100k req"
printf "%-34s %10s %9s %16s\n" "nginx proxy_pass (2 workers)" "$nginx_rps" "$nginx_p99" "$nginx_cpu"
printf "%-34s %10s %9s %16s\n" "haproxy mode http (nbthread 2)" "$haproxy_rps" "$haproxy_p99" "$haproxy_cpu"
printf "%-34s %10s %9s %16s\n" "switchboard edge http" "$edge_rps" "$edge_p99" "$edge_cpu"
printf "%-34s %10s %9s %16s\n" "  edge vs nginx / vs haproxy" "$(ratio "$edge_rps" "$nginx_rps") / $(ratio "$edge_rps" "$haproxy_rps")" \
    "" "$(ratio "$edge_cpu" "$nginx_cpu") / $(ratio "$edge_cpu" "$haproxy_cpu")"
echo "  (best peer req/s: $best_rps)"
printf "\n%-34s %14s %10s\n" "L4" "connections/s" "bulk MiB/s"
printf "%-34s %14s %10s\n" "haproxy mode tcp (nbthread 2)" "$haproxy_cps" "$haproxy_bulk"
printf "%-34s %14s %10s\n" "switchboard edge tcp" "$edge_cps" "$edge_bulk"
printf "%-34s %14s %10s\n" "  edge vs haproxy" "$(ratio "$edge_cps" "$haproxy_cps")" "$(ratio "$edge_bulk" "$haproxy_bulk")"
