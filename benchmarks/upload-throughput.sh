#!/usr/bin/env bash
# Upload throughput over loopback for one large file, side by side in one run:
#   - NGINX (WebDAV PUT, the file written to disk) fed by `curl -T`;
#   - Switchboard fed by `curl` with the whole file in one tus PATCH (the same client, the same single
#     request);
#   - Switchboard fed by `switchboard upload` (tus, resumable; the file streamed from disk in one request).
# The three take turns, each round, and the medians are printed as MiB/s with the ratio to NGINX, with
# Switchboard's peak RSS over all its uploads.
#
# Usage: benchmarks/upload-throughput.sh [size-in-MiB=1024] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
rounds=${2:-3}
work=$(mktemp -d)

source benchmarks/lib.sh
needs nginx
mbps() { awk -v bytes="$1" -v seconds="$2" 'BEGIN { printf "%.0f", bytes / 1048576 / seconds }'; }

head -c "$((size_mib << 20))" /dev/urandom > "$work/file.bin"
bytes=$(stat -c %s "$work/file.bin")

nginx_port=$(free_port)
mkdir -p "$work/dav"
start_nginx <<BLOCK
    server {
        listen 127.0.0.1:$nginx_port;
        client_max_body_size 0;
        location / { root $work/dav; dav_methods PUT; create_full_put_path on; }
    }
BLOCK
wait_for "http://127.0.0.1:$nginx_port/"
# Each upload starts with no dirty pages left by the one before, so none pays for another's writeback.
nginx_put() {
    sync
    curl -s -o /dev/null -w '%{time_total}' -T "$work/file.bin" "http://127.0.0.1:$nginx_port/file.bin"
    cmp -s "$work/file.bin" "$work/dav/file.bin" || { echo "nginx stored something else" >&2; exit 1; }
    rm -f "$work/dav/file.bin"
}

start_switchboard --upload-max-size 100GiB
: > "$work/rss"
( while kill -0 "$server" 2>/dev/null; do grep VmRSS "/proc/$server/status" | awk '{print $2}' >> "$work/rss"; sleep 0.1; done ) &

# One tus PATCH of the whole file with curl: the same client and request shape as the NGINX run.
switchboard_patch() {
    local location seconds
    location=$(curl -s -i -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $bytes" "$url/v1/uploads" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    sync
    seconds=$(curl -s -o /dev/null -w '%{time_total}' -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
        -H 'Content-Type: application/offset+octet-stream' -T "$work/file.bin" "$url$location")
    [ "$(curl -s "$url$location/content" | sha256sum)" = "$(sha256sum < "$work/file.bin")" ] ||
        { echo "switchboard stored something else" >&2; exit 1; }
    curl -s -X DELETE -H 'Tus-Resumable: 1.0.0' "$url$location"
    echo "$seconds"
}

switchboard_cli() {
    local start location
    sync
    start=$(date +%s.%N)
    location=$(HOME="$work" SWITCHBOARD_URL="$url" .build/release/switchboard upload "$work/file.bin" | tail -1)
    awk -v start="$start" -v end="$(date +%s.%N)" 'BEGIN { print end - start }'
    curl -s -X DELETE -H 'Tus-Resumable: 1.0.0' "$location"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for round in $(seq "$rounds"); do
    nginx_put >> "$work/nginx.times"
    switchboard_patch >> "$work/patch.times"
    switchboard_cli >> "$work/cli.times"
done
rss_mib=$(sort -n "$work/rss" | tail -1 | awk '{ printf "%.0f", $1 / 1024 }')

nginx_rate=$(mbps "$bytes" "$(median < "$work/nginx.times")")
printf "%-52s %8s %9s\n" "upload of $size_mib MiB over loopback, median of $rounds" "MiB/s" "vs nginx"
printf "%-52s %8s %9s\n" "nginx WebDAV PUT, curl -T" "$nginx_rate" "1.00"
for row in "switchboard tus, one PATCH with curl -T:patch" "switchboard upload:cli"; do
    rate=$(mbps "$bytes" "$(median < "$work/${row##*:}.times")")
    printf "%-52s %8s %9s\n" "${row%:*}" "$rate" "$(awk -v a="$rate" -v b="$nginx_rate" 'BEGIN { printf "%.2f", a / b }')"
done
echo "switchboard peak RSS over all its uploads: $rss_mib MiB"
