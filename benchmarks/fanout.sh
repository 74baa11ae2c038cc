#!/usr/bin/env bash
# Fan-out, side by side in one run: one publisher, N subscribers, at each rate R (messages/s), through
# the neutral referee in benchmarks/referee/fanout.py (uvloop + picows subscribers, timestamps in the
# payload, loss/duplicate/order accounting; its manual is fanout.md beside it) — Switchboard over WebSocket and SSE, NATS over WebSocket
# and Pushpin over SSE. Deliveries/s = N x R.
#
# Usage: benchmarks/fanout.sh [subscribers=1000] [rates=20,50,100] [seconds=10]
# Needs: nats-server, pushpin and zurl (apt) and a virtualenv with uvloop, picows and numpy (made in
# /tmp/fanout-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
subscribers=${1:-1000}
rates=${2:-20,50,100}
seconds=${3:-10}
referee=$(cd benchmarks/referee && pwd)
venv=/tmp/fanout-venv
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

for tool in nats-server pushpin zurl; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq nats-server pushpin zurl >/dev/null; }
done
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q uvloop picows numpy; }
swift build -c release --product switchboard >/dev/null 2>&1

report() { grep -E "^== |delivery|latency|integrity|cpu"; }
for rate in ${rates//,/ }; do
    for target in switchboard-ws switchboard-sse; do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        .build/release/switchboard serve --listen "127.0.0.1:$port" --data "$work/data-$target-$rate" \
            --access-log off --log-level warning &
        pid=$!
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
        (cd "$referee" && "$venv/bin/python" fanout.py -t "$target" --url "http://127.0.0.1:$port" \
            -n "$subscribers" -r "$rate" -d "$seconds" --server-pid "$pid" 2>&1 | report)
        kill -TERM "$pid"; wait "$pid" || true
    done
    for peer in nats pushpin; do
        (cd "$referee" && "$venv/bin/python" fanout.py -t "$peer" -n "$subscribers" -r "$rate" -d "$seconds" 2>&1 | report)
    done
done
