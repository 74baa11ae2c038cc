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
    swift build -c release --product switchboard >/dev/null
    port=$(free_port)
    .build/release/switchboard serve --listen "127.0.0.1:$port" --data "$work/data" --access-log off \
        --log-level warning "$@" &
    server=$!
    url="http://127.0.0.1:$port"
    wait_for "$url/healthz"
}

# Starts NGINX (2 workers, access log off) with one server block read from standard input, `listen`
# included; its pid file is $work/nginx.pid.
start_nginx() {
    local server_block
    server_block=$(cat)
    cat > "$work/nginx.conf" <<CONF
user root;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx-body;
    server {
$server_block
    }
}
CONF
    nginx -c "$work/nginx.conf"
}
