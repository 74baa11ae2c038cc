#!/usr/bin/env bash
# gRPC: Switchboard's todoPackage.Todo against grpc-go serving the same service (benchmarks/grpc-peer:
# todos in memory), in one run, loaded by h2load with gRPC-framed requests:
#   stream   readTodosStream of 100 todos, h2load -c 10 -m 10: messages/s;
#   unary    createTodo, h2load -c 10 -m 100: calls/s (Switchboard commits each todo to its store,
#            grpc-go appends it to a slice).
# h2load does not read grpc-status, so each server is checked afterwards with curl: the stream sends its
# 100 todos and ends with grpc-status 0, and the id of one more todo shows that every call h2load counted
# created one (and at most the 1,000 calls in flight when it stopped more). Prints each figure, the server CPU seconds per 100k calls or messages, and the ratio.
#
# Usage: benchmarks/grpc.sh [seconds=10]
# Needs: h2load, go, protoc, Debian's golang-google-grpc-dev and golang-goprotobuf-dev (installed with
# apt-get when missing, as root). The peer is built offline from Debian's Go packages (GO111MODULE=off).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
work=$(mktemp -d)
source benchmarks/lib.sh
command -v h2load >/dev/null && command -v go >/dev/null && command -v protoc >/dev/null &&
    [ -x /usr/bin/protoc-gen-go ] && [ -d /usr/share/gocode/src/google.golang.org/grpc ] ||
    { apt-get update -qq && apt-get install -y -qq nghttp2-client golang-go protobuf-compiler \
        golang-google-grpc-dev golang-goprotobuf-dev >/dev/null; }

# The peer: Go code from Protos/todo.proto (protoc-gen-go with its grpc plugin, as grpc-go 1.33 takes it).
export GOPATH="$work/go:/usr/share/gocode" GO111MODULE=off GOCACHE="$work/go-cache" GOFLAGS=
mkdir -p "$work/go/src/todopeer/todo" "$work/go/src/todopeer/server"
protoc -I Protos --plugin=protoc-gen-go=/usr/bin/protoc-gen-go --go_out="plugins=grpc:$work/go/src/todopeer/todo" \
    todo.proto
cp benchmarks/grpc-peer/main.go "$work/go/src/todopeer/server/"
go build -o "$work/todo-peer" todopeer/server

grpc_port=$(free_port)
start_switchboard --grpc-listen "127.0.0.1:$grpc_port" --event-loops 2
peer_port=$(free_port)
"$work/todo-peer" -listen "127.0.0.1:$peer_port" 2>"$work/peer.log" &
track grpc-go
for _ in $(seq 50); do grep -q listening "$work/peer.log" && break; sleep 0.1; done

# Request bodies: a TodoItem {text: "bench"} and a NoParam, each in gRPC's 5-byte length-prefixed frame.
printf '\x00\x00\x00\x00\x07\x12\x05bench' >"$work/todo.bin"
printf '\x00\x00\x00\x00\x00' >"$work/empty.bin"
grpc_headers=(-H 'content-type: application/grpc' -H 'te: trailers')

# One call with curl, which shows the trailers: `call PORT METHOD BODY` → response body in $work/reply.bin,
# fails unless grpc-status is 0.
call() {
    curl -s --http2-prior-knowledge "${grpc_headers[@]}" --data-binary "@$3" -D "$work/headers" \
        -o "$work/reply.bin" "http://127.0.0.1:$1/todoPackage.Todo/$2"
    grep -q '^grpc-status: 0' "$work/headers" || { echo "$2 on port $1 failed:" >&2; cat "$work/headers" >&2; exit 1; }
}

# The id in a TodoItem reply (field 1, a varint after the 5-byte frame prefix).
reply_id() { python3 -c 'import sys
b = open(sys.argv[1], "rb").read()[5:]
assert b[0] == 0x08
n, shift = 0, 0
for byte in b[1:]:
    n |= (byte & 0x7f) << shift; shift += 7
    if byte < 0x80: break
print(n)' "$work/reply.bin"; }

# h2load on METHOD of PORT with BODY, CONNECTIONS and STREAMS each, the server's PIDs after `--`
# → "calls/s done cpu-before cpu-after".
load() {
    local port=$1 method=$2 body=$3 connections=$4 streams=$5 before after result
    shift 6
    before=$(cpu_seconds "$@")
    result=$(h2load -c "$connections" -m "$streams" -t 2 -D "$seconds" -d "$body" "${grpc_headers[@]}" \
        "http://127.0.0.1:$port/todoPackage.Todo/$method" | awk '
        /^finished in/ { rps = $4 + 0 }
        /succeeded,/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^succeeded,/) done = $i }
        END { printf "%.0f %d\n", rps, done }')
    after=$(cpu_seconds "$@")
    echo "$result $before $after"
}

measure() {
    local port=$1 pid=$2 first rps done before after last made
    # 100 todos, then their stream.
    h2load -n 100 -c 1 -m 1 -d "$work/todo.bin" "${grpc_headers[@]}" \
        "http://127.0.0.1:$port/todoPackage.Todo/createTodo" >/dev/null
    call "$port" readTodosStream "$work/empty.bin"
    [ "$(stat -c %s "$work/reply.bin")" -eq 1400 ] || { echo "readTodosStream on $port sent a short stream" >&2; exit 1; }
    read -r rps done before after < <(load "$port" readTodosStream "$work/empty.bin" 10 10 -- "$pid")
    echo "$((rps * 100)) $(cpu_per "$before" "$after" "$((done * 100))" 100000)"
    call "$port" createTodo "$work/todo.bin"
    first=$(reply_id)
    read -r rps done before after < <(load "$port" createTodo "$work/todo.bin" 10 100 -- "$pid")
    call "$port" createTodo "$work/todo.bin"
    last=$(reply_id)
    # Calls still in flight when h2load stops are made but not counted: up to 10 x 100 more.
    made=$((last - first - 1))
    [ "$made" -ge "$done" ] && [ "$made" -le $((done + 1000)) ] ||
        { echo "createTodo on $port: h2load counted $done calls, the server made $made todos" >&2; exit 1; }
    echo "$rps $(cpu_per "$before" "$after" "$done" 100000)"
}

{ read -r peer_stream peer_stream_cpu; read -r peer_unary peer_unary_cpu; } < <(measure "$peer_port" "$(pid_of grpc-go)")
{ read -r sb_stream sb_stream_cpu; read -r sb_unary sb_unary_cpu; } < <(measure "$grpc_port" "$server")

row() { printf "%-48s %12s %12s %8s\n" "$@"; }
row "measure (${seconds}s each)" "grpc-go" "switchboard" "ratio"
row "readTodosStream messages/s (100 per call)" "$peer_stream" "$sb_stream" "$(ratio "$sb_stream" "$peer_stream")"
row "  CPU s / 100k messages" "$peer_stream_cpu" "$sb_stream_cpu" "$(ratio "$sb_stream_cpu" "$peer_stream_cpu")"
row "createTodo calls/s (-c 10 -m 100)" "$peer_unary" "$sb_unary" "$(ratio "$sb_unary" "$peer_unary")"
row "  CPU s / 100k calls" "$peer_unary_cpu" "$sb_unary_cpu" "$(ratio "$sb_unary_cpu" "$peer_unary_cpu")"
