#!/usr/bin/env bash
# TURN and STUN: Switchboard against coturn (turnserver, the same relay port range, loopback peers allowed,
# --no-tls --no-dtls, the same REST secret), in one run, driven by the same clients:
#   relay    coturn's turnutils_uclient: CLIENTS clients, each with one allocation and a channel, send
#            messages of 170 bytes every INTERVAL ms through the relay to turnutils_peer, which echoes them
#            back; rising rates. Printed per server: messages/s, relayed packets/s (each message is relayed
#            to the peer and back), loss, RTT average/max, and server CPU seconds per 1,000 relayed packets.
#   binding  benchmarks/stun-load (Go, standard library only, built here): 8 sockets keep 16 Binding
#            requests each in flight for SECONDS; answers/s, p50/p99, and CPU seconds per 100k answers.
#
# Usage: benchmarks/turn.sh [seconds=10]
# Needs: coturn (its server and clients) and go (installed with apt-get when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
work=$(mktemp -d)
source benchmarks/lib.sh
command -v turnserver >/dev/null && command -v go >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq coturn golang-go >/dev/null; }
GOPATH="$work/go" GO111MODULE=off GOCACHE="$work/go-cache" go build -o "$work/stun-load" ./benchmarks/stun-load

secret=north
peer_port=$(free_port)
turnutils_peer -L 127.0.0.1 -p "$peer_port" >/dev/null 2>&1 &
track peer

# Starts both servers afresh, so that no allocation of an earlier run (a client port the kernel hands out
# again) answers 437: sets sb_port and coturn_port.
start_servers() {
    stop switchboard
    stop coturn
    rm -rf "$work/data"
    sb_port=$(free_port)
    start_switchboard --stun-listen "127.0.0.1:$sb_port" --turn-secret "$secret" --turn-allowed-peers 127.0.0.0/8 \
        --turn-relay-ports 50000-54999 --event-loops 2
    coturn_port=$(free_port)
    turnserver -n --no-cli --no-tls --no-dtls --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 -p "$coturn_port" \
        --min-port 55000 --max-port 59999 --use-auth-secret --static-auth-secret "$secret" --realm switchboard \
        --allow-loopback-peers --relay-threads 2 --log-file "$work/coturn.log" --simple-log >/dev/null 2>&1 &
    track coturn
    sleep 1
}

# relay PORT PID CLIENTS INTERVAL → "messages/s relayed/s loss% rtt-avg rtt-max cpu/1k-relayed"
relay() {
    local port=$1 pid=$2 clients=$3 interval=$4 messages before after output
    messages=$((seconds * 1000 / interval))
    before=$(cpu_seconds "$pid")
    output=$(timeout $((seconds * 4 + 30)) turnutils_uclient -c -p "$port" -e 127.0.0.1 -r "$peer_port" -W "$secret" \
        -u bench -m "$clients" -n "$messages" -z "$interval" -l 170 127.0.0.1 2>&1 || true)
    after=$(cpu_seconds "$pid")
    awk -v before="$before" -v after="$after" '
        /tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+$/ { split($0, a, /[=,]/); sent = a[2] + 0; received = a[4] + 0 }
        /Total transmit time is/ { time = $NF + 0 }
        /Total lost packets/ { loss = $0; sub(/^[^(]*\(/, "", loss); sub(/%.*/, "", loss) }
        /Average round trip delay/ {
            avg = $0; sub(/.*delay /, "", avg); sub(/ ms.*/, "", avg)
            max = $0; sub(/.*max = /, "", max); sub(/ ms.*/, "", max)
        }
        END {
            if (time == 0) time = 1
            relayed = sent + received
            printf "%.0f %.0f %.2f %s %s %.3f\n", received / time, relayed / time, loss, avg, max,
                (relayed > 0 ? (after - before) * 1000 / relayed : 0)
        }' <<<"$output"
}

# binding PORT PID → "answered/s p50 p99 cpu/100k lost"
binding() {
    local port=$1 pid=$2 before after output
    before=$(cpu_seconds "$pid")
    output=$("$work/stun-load" -server "127.0.0.1:$port" -sockets 8 -window 16 -seconds "$seconds")
    after=$(cpu_seconds "$pid")
    awk -v before="$before" -v after="$after" '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        printf "%s %s %s %.3f %s\n", f["per_second"], f["p50_ms"], f["p99_ms"],
            (f["answered"] > 0 ? (after - before) * 100000 / f["answered"] : 0), f["lost"]
    }' <<<"$output"
}

echo "relay (UDP, channels, 170-byte messages, ${seconds}s each)"
printf '%-22s %-12s %10s %10s %7s %8s %8s %14s\n' load server msgs/s relayed/s loss% rtt-avg rtt-max "CPU s/1k pkts"
for level in "50 10" "50 4" "50 2" "50 1" "100 1"; do
    set -- $level
    start_servers
    for name in switchboard coturn; do
        if [ "$name" = switchboard ]; then port=$sb_port; else port=$coturn_port; fi
        read -r rate relayed loss avg max cpu < <(relay "$port" "$(pid_of "$name")" "$1" "$2")
        printf '%-22s %-12s %10s %10s %7s %8s %8s %14s\n' "$1 clients every $2 ms" "$name" "$rate" "$relayed" \
            "$loss" "$avg" "$max" "$cpu"
    done
done

echo
echo "binding (8 sockets x 16 in flight, ${seconds}s)"
start_servers
printf '%-12s %12s %8s %8s %16s %6s\n' server answers/s p50-ms p99-ms "CPU s/100k" lost
for name in switchboard coturn; do
    if [ "$name" = switchboard ]; then port=$sb_port; else port=$coturn_port; fi
    read -r rate p50 p99 cpu lost < <(binding "$port" "$(pid_of "$name")")
    printf '%-12s %12s %8s %8s %16s %6s\n' "$name" "$rate" "$p50" "$p99" "$cpu" "$lost"
done
