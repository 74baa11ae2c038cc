# Shared by the benchmark scripts, sourced from the repository's root once `work` (a scratch folder) is set.
#
# Every server a script starts runs as a background job of that script (NGINX with `daemon off`, HAProxy
# in the foreground, Switchboard as is) and is remembered by PID, so that whatever way the script ends —
# done, failed, or stopped with Ctrl-C — `cleanup` stops exactly those processes and nothing outlives it.

declare -A started=()

# Servers measured here answer HTTP only: no gRPC or STUN listener (several may run at once; older builds
# ignore the variables).
export SWITCHBOARD_GRPC_LISTEN=off SWITCHBOARD_STUN_LISTEN=off

# Stops every server the script started, waits for them, and removes $work. Runs once, on any exit.
cleanup() {
    trap - EXIT INT TERM HUP
    local name
    for name in "${!started[@]}"; do stop "$name"; done
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Remembers the last background job as the server NAME: `some-server & track NAME`.
track() { started[$1]=$!; }

# The PID of the server NAME.
pid_of() { echo "${started[$1]}"; }

# Stops the server NAME (TERM, then KILL after 5 s) and waits for it: `stop nginx`.
stop() {
    local pid=${started[$1]:-}
    [ -n "$pid" ] || return 0
    unset "started[$1]"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Installs the Debian packages of whichever of the named commands are missing: `needs wrk sqlite3`.
needs() {
    local missing=()
    for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    [ ${#missing[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until URL answers at all: `wait_for URL [curl options]`.
wait_for() {
    for _ in $(seq 100); do curl -s -o /dev/null "$@" && return 0; sleep 0.1; done
    echo "no answer from $1" >&2
    exit 1
}

# The Switchboard binary to measure: $SWITCHBOARD_BIN when set (to compare builds of other commits), else
# the release build of this checkout, built first.
switchboard_binary() {
    if [ -n "${SWITCHBOARD_BIN:-}" ]; then
        echo "$SWITCHBOARD_BIN"
    else
        swift build -c release --product switchboard >/dev/null 2>&1
        echo .build/release/switchboard
    fi
}

# Starts the release server on a free port with its data in $work/data and the given extra settings;
# sets `port`, `url` and `server` (its pid; also `pid_of switchboard`).
start_switchboard() {
    local binary
    binary=$(switchboard_binary)
    port=$(free_port)
    "$binary" serve --listen "127.0.0.1:$port" --data "$work/data" --access-log off --log-level warning "$@" &
    track switchboard
    server=$(pid_of switchboard)
    url="http://127.0.0.1:$port"
    wait_for "$url/healthz"
}

# Starts an NGINX named NAME with WORKERS worker processes (default 2), access log off, and the `http`
# block's contents read from standard input: `start_nginx proxy 2 <<BLOCK ... BLOCK`; `stop proxy` ends it.
start_nginx() {
    local name=${1:-nginx} workers=${2:-2} http_block
    http_block=$(cat)
    cat > "$work/$name.conf" <<CONF
user root;
daemon off;
worker_processes $workers;
pid $work/$name.pid;
error_log $work/$name-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/$name-body;
$http_block
}
CONF
    nginx -c "$work/$name.conf" &
    track "$name"
}

# CPU seconds (user + system) spent so far by the given processes and their children (NGINX's workers).
cpu_seconds() {
    local ticks=0 pid
    for pid in "$@" $(for pid in "$@"; do pgrep -P "$pid"; done); do
        ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# CPU seconds per PER units of work: `cpu_per BEFORE AFTER UNITS PER` (e.g. per 100000 requests).
cpu_per() {
    awk -v a="$1" -v b="$2" -v n="$3" -v per="$4" 'BEGIN { if (n > 0) printf "%.3f", (b - a) * per / n; else print "-" }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# wrk with THREADS and CONNECTIONS for DURATION against URL, the server's PIDs after `--`:
# prints "req/s p50-ms p99-ms cpu-s-per-100k-requests".
wrk_measure() {
    local threads=$1 connections=$2 duration=$3 url=$4
    shift 5
    local before after result rps p50 p99 total
    before=$(cpu_seconds "$@")
    result=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "$url" | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 } /requests in/ { total = $1 }
        END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, total }')
    after=$(cpu_seconds "$@")
    read -r rps p50 p99 total <<< "$result"
    echo "$rps $p50 $p99 $(cpu_per "$before" "$after" "$total" 100000)"
}

# New connections through URL for DURATION (wrk -t2 -c16, `Connection: close`: one request per
# connection), the server's PIDs after `--` → "connections/s cpu-s-per-1k-connections".
wrk_connections() {
    local duration=$1 url=$2 before after rate total
    shift 3
    before=$(cpu_seconds "$@")
    read -r rate total < <(wrk -t2 -c16 -d"$duration" -H 'Connection: close' "$url" |
        awk '/^Requests\/sec/ { rps = $2 } /requests in/ { total = $1 } END { printf "%.0f %d\n", rps, total }')
    after=$(cpu_seconds "$@")
    echo "$rate $(cpu_per "$before" "$after" "$total" 1000)"
}
