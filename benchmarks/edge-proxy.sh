#!/usr/bin/env bash
# The edge against NGINX and HAProxy, in one run, in front of the same two upstreams (an NGINX with one
# worker answering a 15-byte JSON on two ports). Each proxy gets 2 worker threads (NGINX 2 workers,
# HAProxy nbthread 2, Switchboard 2 event loops).
#   L7  wrk -t2 -c64 through each proxy: requests/s, p99, and the proxy's CPU seconds per 100,000 requests.
#   L4  Switchboard `tcp` against HAProxy `mode tcp`: connections/s (wrk, a new connection per request)
#       and bulk MiB/s (a 512 MiB download by curl).
# Prints each figure, the CPU seconds each proxy spent per unit of work (from /proc/PID/stat, its worker
# processes included), and the ratios. SWITCHBOARD_BIN=path measures that binary instead of building.
#
# Usage: benchmarks/edge-proxy.sh [duration=10s]
# Needs: nginx, haproxy, wrk (installed with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
work=$(mktemp -d)
source benchmarks/lib.sh
command -v nginx >/dev/null && command -v haproxy >/dev/null && command -v wrk >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq nginx-light haproxy wrk >/dev/null; }
binary=$(switchboard_binary)

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

# wrk -t2 -c64 through URL, the proxy's PIDs after `--` → "req/s p99-ms cpu-s-per-100k".
measure() {
    local rps p50 p99 cpu
    read -r rps p50 p99 cpu < <(wrk_measure 2 64 "$duration" "$@")
    echo "$rps $p99 $cpu"
}

# One 512 MiB download through URL, the proxy's PIDs after `--` → "MiB/s cpu-s-per-GiB".
bulk_mib_per_second() {
    local url=$1 before after speed
    shift 2
    before=$(cpu_seconds "$@")
    speed=$(curl -s -o /dev/null -w '%{speed_download}' "$url" | awk '{ printf "%.0f\n", $1 / 1048576 }')
    after=$(cpu_seconds "$@")
    echo "$speed $(cpu_per "$before" "$after" 512 1024)"
}

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
read -r nginx_rps nginx_p99 nginx_cpu < <(measure "http://127.0.0.1:$nginx_port/" -- "$(pid_of proxy)")
stop proxy

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
haproxy -f "$work/haproxy.cfg" -db &
track haproxy
wait_for "http://127.0.0.1:$haproxy_port/"
read -r haproxy_rps haproxy_p99 haproxy_cpu < <(measure "http://127.0.0.1:$haproxy_port/" -- "$(pid_of haproxy)")
read -r haproxy_cps haproxy_cps_cpu < <(wrk_connections "$duration" "http://127.0.0.1:$haproxy_tcp_port/" -- "$(pid_of haproxy)")
read -r haproxy_bulk haproxy_bulk_cpu < <(bulk_mib_per_second "http://127.0.0.1:$haproxy_tcp_port/bulk.bin" -- "$(pid_of haproxy)")
stop haproxy

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
track edge
wait_for "http://127.0.0.1:$edge_port/"
read -r edge_rps edge_p99 edge_cpu < <(measure "http://127.0.0.1:$edge_port/" -- "$(pid_of edge)")
read -r edge_cps edge_cps_cpu < <(wrk_connections "$duration" "http://127.0.0.1:$edge_tcp_port/" -- "$(pid_of edge)")
read -r edge_bulk edge_bulk_cpu < <(bulk_mib_per_second "http://127.0.0.1:$edge_tcp_port/bulk.bin" -- "$(pid_of edge)")
stop edge
best_rps=$(( nginx_rps > haproxy_rps ? nginx_rps : haproxy_rps ))
printf "%-34s %10s %9s %16s\n" "L7 (wrk -t2 -c64 -d$duration)" "req/s" "p99 ms" "CPU s / 100k req"
printf "%-34s %10s %9s %16s\n" "nginx proxy_pass (2 workers)" "$nginx_rps" "$nginx_p99" "$nginx_cpu"
printf "%-34s %10s %9s %16s\n" "haproxy mode http (nbthread 2)" "$haproxy_rps" "$haproxy_p99" "$haproxy_cpu"
printf "%-34s %10s %9s %16s\n" "switchboard edge http" "$edge_rps" "$edge_p99" "$edge_cpu"
printf "%-34s %10s %9s %16s\n" "  edge vs nginx / vs haproxy" "$(ratio "$edge_rps" "$nginx_rps") / $(ratio "$edge_rps" "$haproxy_rps")" \
    "" "$(ratio "$edge_cpu" "$nginx_cpu") / $(ratio "$edge_cpu" "$haproxy_cpu")"
echo "  (best peer req/s: $best_rps)"
printf "\n%-34s %14s %12s %10s %12s\n" "L4" "connections/s" "CPU s / 1k" "bulk MiB/s" "CPU s / GiB"
printf "%-34s %14s %12s %10s %12s\n" "haproxy mode tcp (nbthread 2)" "$haproxy_cps" "$haproxy_cps_cpu" "$haproxy_bulk" "$haproxy_bulk_cpu"
printf "%-34s %14s %12s %10s %12s\n" "switchboard edge tcp" "$edge_cps" "$edge_cps_cpu" "$edge_bulk" "$edge_bulk_cpu"
printf "%-34s %14s %12s %10s %12s\n" "  edge vs haproxy" "$(ratio "$edge_cps" "$haproxy_cps")" \
    "$(ratio "$edge_cps_cpu" "$haproxy_cps_cpu")" "$(ratio "$edge_bulk" "$haproxy_bulk")" "$(ratio "$edge_bulk_cpu" "$haproxy_bulk_cpu")"
