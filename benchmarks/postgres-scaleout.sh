#!/usr/bin/env bash
# Publishes and jobs on the shared PostgreSQL store, one node and three behind the edge, beside SQLite on
# one node, with pgbench on the same PostgreSQL server as the ceiling. PostgreSQL 15 (Debian) runs with
# fsync on, in a throwaway cluster (scripts/postgres).
#  1. Publishes: wrk -t2 -cC POSTing 256-byte messages to one topic for DURATION, against SQLite (one
#     node), PostgreSQL (one node), and PostgreSQL (three nodes, wrk through `switchboard edge`, round
#     robin). Then pgbench with C clients running the same inserts a publish commits (the topic row's
#     next offset, then the message), one message per transaction, on the same server.
#  2. Jobs: wrk -t2 -cC submits no-op jobs (`sleep` 0 s) for DURATION while the built-in workers of each
#     node run them (64 at once per node); jobs/s from first submission to last completion, read back
#     from the store. On PostgreSQL also per core the database used.
# CPU seconds come from /proc/PID/stat: each node, the edge, and PostgreSQL (the postmaster and its
# backends).
#
# Usage: benchmarks/postgres-scaleout.sh [duration=10s] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
connections=${2:-64}
work=$(mktemp -d)

source benchmarks/lib.sh
needs wrk pgbench psql
binary=$(switchboard_binary)
postgres_dir=$(mktemp -d /tmp/switchboard-bench-postgres.XXXXXX)
trap 'scripts/postgres remove "$postgres_dir"; cleanup' EXIT
seconds=${duration%s}

# A wrk script POSTing BODY (a Lua expression) as CONTENT-TYPE that counts non-2xx answers and errors.
post_script() {
    cat > "$work/$1.lua" <<LUA
wrk.method = "POST"
wrk.body = $2
wrk.headers["Content-Type"] = "$3"
done = function(summary, latency, requests)
    io.write(string.format("errors %d\\n", summary.errors.status + summary.errors.connect
        + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
}
post_script publish 'string.rep("x", 256)' text/plain
post_script job "'{\"type\":\"sleep\",\"input\":{\"seconds\":0}}'" application/json

# A fresh database on the cluster; prints its URL.
new_database() {
    local name=$1
    psql -q "$cluster" -c "CREATE DATABASE $name" >/dev/null
    echo "${cluster/\/postgres\?/\/$name?}"
}

postgres_pid() { head -1 "$postgres_dir/data/postmaster.pid"; }

# Starts node N with the given settings; sets nodes[N] (pid) and ports[N].
start_node() {
    local index=$1
    shift
    ports[$index]=$(free_port)
    "$binary" serve --listen "127.0.0.1:${ports[$index]}" --data "$work/node$index" --uploads-dir "$work/uploads" \
        --access-log off --log-level warning --job-queues default=64 "$@" &
    track "node$index"
    nodes[$index]=$(pid_of "node$index")
    wait_for "http://127.0.0.1:${ports[$index]}/healthz"
}

stop_nodes() {
    for index in "${!nodes[@]}"; do stop "node$index"; done
    nodes=()
    ports=()
}

# Starts the edge, round robin over the running nodes; sets edge_port.
start_edge() {
    edge_port=$(free_port)
    {
        echo "listeners:"
        echo "  - {name: web, kind: http, listen: 127.0.0.1:$edge_port, routes: [{cluster: nodes}]}"
        echo "clusters:"
        echo "  - name: nodes"
        echo "    upstreams:"
        for index in "${!ports[@]}"; do echo "      - {address: 127.0.0.1:${ports[$index]}}"; done
    } > "$work/edge.yaml"
    "$binary" edge --config "$work/edge.yaml" > "$work/edge.log" 2>&1 &
    track edge
    wait_for "http://127.0.0.1:$edge_port/healthz"
}

# Runs wrk with SCRIPT against URL; prints "requests rate" and the CPU used by each tracked process.
measure() {
    local label=$1 script=$2 target=$3 before_nodes=() before_edge=0 before_pg=0 after rate total index
    for index in "${!nodes[@]}"; do before_nodes[$index]=$(cpu_seconds "${nodes[$index]}"); done
    [ -n "${started[edge]:-}" ] && before_edge=$(cpu_seconds "$(pid_of edge)")
    [ -n "${pg:-}" ] && before_pg=$(cpu_seconds "$(postgres_pid)")
    read -r rate total errors < <(wrk -t2 -c"$connections" -d"$duration" -s "$script" "$target" |
        awk '/^Requests\/sec/ { rps = $2 } /requests in/ { total = $1 } /^errors/ { errors = $2 }
            END { printf "%.0f %d %d\n", rps, total, errors }')
    line="$label: $rate/s ($total answered, $errors errors)"
    for index in "${!nodes[@]}"; do
        after=$(cpu_seconds "${nodes[$index]}")
        line+=", node $index $(cpu_per "${before_nodes[$index]}" "$after" "$total" 1000) CPU s/1k"
    done
    if [ -n "${started[edge]:-}" ]; then
        line+=", edge $(cpu_per "$before_edge" "$(cpu_seconds "$(pid_of edge)")" "$total" 1000)"
    fi
    if [ -n "${pg:-}" ]; then
        pg_cpu=$(awk -v a="$before_pg" -v b="$(cpu_seconds "$(postgres_pid)")" 'BEGIN { printf "%.2f", b - a }')
        line+=", PostgreSQL $(cpu_per 0 "$pg_cpu" "$total" 1000) CPU s/1k ($pg_cpu s)"
    fi
    echo "$line"
    last_rate=$rate
}

# Submits jobs to TARGET with wrk, waits until the workers have run them all, and prints jobs/s from first
# submission to last completion, read from the store with the query COMMAND (psql or sqlite3); on
# PostgreSQL also the database's CPU seconds over the whole run and jobs per database CPU second.
jobs_run() {
    local target=$1 before=0 jobs elapsed
    shift
    local query="SELECT COUNT(*), (MAX(updated_at) - MIN(created_at)) / 1000.0 FROM jobs WHERE state = 'succeeded'"
    local pending="SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
    [ -n "$pg" ] && before=$(cpu_seconds "$(postgres_pid)")
    measure "submit jobs" "$work/job.lua" "$target"
    while [ "$("$@" "$pending" | tr -d ' ')" != 0 ]; do sleep 0.5; done
    read -r jobs elapsed < <("$@" "$query" | tr '|' ' ')
    line=$(awk -v n="$jobs" -v s="$elapsed" 'BEGIN { printf "  %d jobs in %.2f s: %.0f jobs/s end to end", n, s, n / s }')
    if [ -n "$pg" ]; then
        pg_cpu=$(awk -v a="$before" -v b="$(cpu_seconds "$(postgres_pid)")" 'BEGIN { printf "%.2f", b - a }')
        line+=$(awk -v n="$jobs" -v c="$pg_cpu" \
            'BEGIN { printf "; PostgreSQL %.2f CPU s in all, %.0f jobs per PostgreSQL CPU second", c, n / c }')
    fi
    echo "$line"
}

declare -a nodes=() ports=()
sqlite() { sqlite3 "$work/node1/switchboard.sqlite" "$1"; }

echo "== SQLite, one node"
pg=
start_node 1
measure "publish" "$work/publish.lua" "http://127.0.0.1:${ports[1]}/v1/topics/bench/messages"
sqlite_publish=$last_rate
jobs_run "http://127.0.0.1:${ports[1]}/v1/jobs" sqlite
stop_nodes
rm -rf "$work/node1"

cluster=$(scripts/postgres start "$postgres_dir" "-c fsync=on -c shared_buffers=256MB")
pg=1
echo "== PostgreSQL, one node"
one=$(new_database one)
start_node 1 --store "$one"
measure "publish" "$work/publish.lua" "http://127.0.0.1:${ports[1]}/v1/topics/bench/messages"
one_publish=$last_rate
jobs_run "http://127.0.0.1:${ports[1]}/v1/jobs" psql -qtA "$one" -c
stop_nodes

echo "== PostgreSQL, three nodes behind the edge"
three=$(new_database three)
for index in 1 2 3; do start_node "$index" --store "$three"; done
start_edge
measure "publish" "$work/publish.lua" "http://127.0.0.1:$edge_port/v1/topics/bench/messages"
three_publish=$last_rate
jobs_run "http://127.0.0.1:$edge_port/v1/jobs" psql -qtA "$three" -c
stop edge
stop_nodes

echo "== pgbench, $connections clients, the inserts of one publish per transaction"
cat > "$work/publish.sql" <<'SQL'
BEGIN;
INSERT INTO topics (name, next_offset) VALUES ('pgbench', 2)
    ON CONFLICT (name) DO UPDATE SET next_offset = topics.next_offset + 1 RETURNING next_offset - 1 AS o \gset
INSERT INTO topic_messages (topic, "offset", id, published_at, content_type, body)
    VALUES ('pgbench', :o, md5(random()::text), 0, 'text/plain', convert_to(repeat('x', 256), 'UTF8'));
END;
SQL
before=$(cpu_seconds "$(postgres_pid)")
ceiling=$(pgbench -n -c "$connections" -j 2 -T "$seconds" -f "$work/publish.sql" "$one" 2>&1 |
    awk '/^tps = / { printf "%.0f", $3 }')
pg_cpu=$(awk -v a="$before" -v b="$(cpu_seconds "$(postgres_pid)")" 'BEGIN { printf "%.2f", b - a }')
echo "pgbench: $ceiling transactions/s (one message each), PostgreSQL $pg_cpu CPU s"
echo "publishes, PostgreSQL one node / pgbench: $(ratio "$one_publish" "$ceiling")," \
    "three nodes / one node: $(ratio "$three_publish" "$one_publish"), PostgreSQL / SQLite: $(ratio "$one_publish" "$sqlite_publish")"
