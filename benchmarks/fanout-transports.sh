#!/usr/bin/env bash
# Fan-out over each of Switchboard's push transports with the same client: `switchboard bench` (one
# publisher over HTTP, N subscribers with a connection each) over WebSocket, SSE and gRPC Subscribe
# streams, a fresh server for each. Prints the bench's report and the server CPU seconds per 1,000
# deliveries. The cross-server comparison (NATS, Pushpin) is benchmarks/fanout.sh, with the neutral referee.
#
# Usage: benchmarks/fanout-transports.sh [subscribers=1000] [rate=20] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
subscribers=${1:-1000}
rate=${2:-20}
seconds=${3:-10}
work=$(mktemp -d)
source benchmarks/lib.sh
binary=$(switchboard_binary)

for via in ws sse grpc; do
    grpc_port=$(free_port)
    start_switchboard --grpc-listen "127.0.0.1:$grpc_port"
    before=$(cpu_seconds "$server")
    report=$("$binary" bench --url "$url" --grpc "127.0.0.1:$grpc_port" --via "$via" \
        --subscribers "$subscribers" --rate "$rate" --seconds "$seconds")
    after=$(cpu_seconds "$server")
    received=$(sed -n 's/.*deliveries \([0-9]*\) of.*/\1/p' <<<"$report")
    echo "== $via"
    echo "$report"
    echo "server CPU s / 1k deliveries: $(cpu_per "$before" "$after" "$received" 1000)"
    stop switchboard
    rm -rf "$work/data"
done
