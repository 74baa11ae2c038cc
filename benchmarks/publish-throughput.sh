#!/usr/bin/env bash
# Acknowledged durable publishes per second: wrk with 64 keep-alive connections POSTing 256-byte
# messages to one topic; every 201 is a message committed to SQLite (WAL, durability "process").
# Prints the rate, latency, the server's CPU seconds per 1,000 acknowledged publishes, and how many
# messages the log holds afterwards. Then the peer in the same run: Redis Streams `XADD` of the same
# 256 bytes with the append-only file on (`appendfsync everysec`), from redis-benchmark at the same
# concurrency, and the ratio.
#
# Usage: benchmarks/publish-throughput.sh [duration=10s] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
connections=${2:-64}
work=$(mktemp -d)

source benchmarks/lib.sh
needs wrk redis-server
start_switchboard

cat > "$work/publish.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 256)
wrk.headers["Content-Type"] = "text/plain"
done = function(summary, latency, requests)
    io.write(string.format("non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect
        + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
echo "wrk -t2 -c$connections -d$duration, 256-byte publishes to one topic"
before=$(cpu_seconds "$server")
wrk -t2 -c"$connections" -d"$duration" --latency -s "$work/publish.lua" \
    "http://127.0.0.1:$port/v1/topics/bench/messages" | grep -E "Requests/sec|50%|99%|non-2xx|requests in" |
    tee "$work/wrk.out"
after=$(cpu_seconds "$server")
echo "server CPU s / 1k publishes: $(cpu_per "$before" "$after" "$(awk '/requests in/ { print $1 }' "$work/wrk.out")" 1000)"
curl -s "http://127.0.0.1:$port/v1/topics/bench/messages?limit=1" |
    python3 -c 'import json,sys; a=json.load(sys.stdin); print("messages in the log:", a["latestOffset"])'

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work" --appendonly yes --appendfsync everysec \
    --save "" --logfile "$work/redis.log" &
track redis
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
requests=300000
before=$(cpu_seconds "$(pid_of redis)")
redis_rps=$(redis-benchmark -p "$redis_port" -c "$connections" -n "$requests" -q \
    XADD bench '*' data "$(printf 'x%.0s' $(seq 256))" | tr '\r' '\n' | awk '/requests per second/ { print $(NF - 5) }' | tail -1)
after=$(cpu_seconds "$(pid_of redis)")
stop redis
echo "redis XADD (appendfsync everysec), $connections connections: $redis_rps publishes/s," \
    "server CPU s / 1k publishes: $(cpu_per "$before" "$after" "$requests" 1000)"
switchboard_rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk.out")
echo "switchboard vs redis: $(ratio "$switchboard_rps" "$redis_rps")"
