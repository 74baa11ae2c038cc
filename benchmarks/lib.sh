# Shared by the benchmark scripts, sourced from the repository's root once `work` (a scratch folder) is set.

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

# Starts the release server on a free port with its data in $work/data and the given extra settings;
# sets `port`, `url` and `server` (its pid).
start_switchboard() {
    swift build -c release --product switchboard >/dev/null 2>&1
    port=$(free_port)
    .build/release/switchboard serve --listen "127.0.0.1:$port" --data "$work/data" --access-log off \
        --log-level warning "$@" &
    server=$!
    url="http://127.0.0.1:$port"
    wait_for "$url/healthz"
}

# Starts an NGINX named NAME (its pid in $work/NAME.pid) with WORKERS worker processes (default 2), access
# log off, and the `http` block's contents read from standard input: `start_nginx proxy 2 <<BLOCK ... BLOCK`.
start_nginx() {
    local name=${1:-nginx} workers=${2:-2} http_block
    http_block=$(cat)
    cat > "$work/$name.conf" <<CONF
user root;
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
    nginx -c "$work/$name.conf"
}

# Stops what a benchmark started: its background jobs, every server whose pid file is in $work, and
# removes $work. Scripts run `trap cleanup EXIT` once they have sourced this file.
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    for pid_file in "$work"/*.pid; do
        [ -f "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null
    done
    rm -rf "$work"
}
