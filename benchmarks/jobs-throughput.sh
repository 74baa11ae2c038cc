#!/usr/bin/env bash
# Jobs per second end to end (submitted -> claimed -> completed) on SQLite, and submit-to-start latency.
#  1. Built-in workers: wrk submits no-op jobs (`sleep` 0 s) with 64 keep-alive connections while the
#     built-in workers of queue `default` run them; then with 2 connections, a load they keep up with,
#     for the submit-to-start latency without a backlog.
#  2. External HTTP workers: wrk submits jobs to queue `ext`, then N Python processes claim and complete
#     them over HTTP (benchmarks/jobs-worker.py).
# Rates and latencies are read back from the store: first creation to last completion, and for each job
# the time from submission to the commit of its `running` event.
#
# Usage: benchmarks/jobs-throughput.sh [duration=10s] [external-workers=4]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
workers=${2:-4}
work=$(mktemp -d)

source benchmarks/lib.sh
needs wrk sqlite3
start_switchboard --job-queues default=64,light=64

submit_script() {
    cat > "$work/submit-$1.lua" <<LUA
wrk.method = "POST"
wrk.body = '$2'
wrk.headers["Content-Type"] = "application/json"
LUA
    echo "$work/submit-$1.lua"
}

# Waits until no job of queue $1 is queued or running.
drain() {
    while [ "$(sqlite3 "$work/data/switchboard.sqlite" \
        "SELECT COUNT(*) FROM jobs WHERE queue = '$1' AND state IN ('queued', 'running')")" != 0 ]; do
        sleep 0.5
    done
}

# Prints jobs/s from first submission to last completion, and submit-to-start p50/p99, for queue $1.
report() {
    sqlite3 "$work/data/switchboard.sqlite" <<SQL
.mode list
SELECT printf('  %d jobs succeeded in %.2f s: %.0f jobs/s end to end', COUNT(*),
    (MAX(updated_at) - MIN(created_at)) / 1000.0, COUNT(*) * 1000.0 / (MAX(updated_at) - MIN(created_at)))
FROM jobs WHERE queue = '$1' AND state = 'succeeded';
WITH starts AS (
    SELECT m.published_at - j.created_at AS latency FROM jobs j
    JOIN topic_messages m ON m.topic = 'jobs.' || j.id AND m."offset" = 2
    WHERE j.queue = '$1'
), ranked AS (SELECT latency, ROW_NUMBER() OVER (ORDER BY latency) AS n, COUNT(*) OVER () AS total FROM starts)
SELECT printf('  submit to start: p50 %d ms, p99 %d ms',
    MAX(CASE WHEN n <= total * 0.50 THEN latency END), MAX(CASE WHEN n <= total * 0.99 THEN latency END))
FROM ranked;
SQL
}

echo "1. built-in workers (queue default, 64 at once), wrk -t2 -c64 -d$duration submitting sleep-0 jobs"
wrk -t2 -c64 -d"$duration" --latency -s "$(submit_script builtin '{"type":"sleep","input":{"seconds":0}}')" \
    "$url/v1/jobs" | grep -E "Requests/sec|requests in" | sed 's/^/  submit: /'
drain default
report default

echo "1b. built-in workers at a load they keep up with (queue light), wrk -t1 -c2 -d5s"
wrk -t1 -c2 -d5s -s "$(submit_script light '{"queue":"light","type":"sleep","input":{"seconds":0}}')" \
    "$url/v1/jobs" | grep -E "Requests/sec" | sed 's/^/  submit: /'
drain light
report light

echo "2. external HTTP workers ($workers processes), wrk -t2 -c64 -d$duration submitting to queue ext first"
wrk -t2 -c64 -d"$duration" -s "$(submit_script ext '{"queue":"ext","type":"noop","input":null}')" \
    "$url/v1/jobs" | grep -E "Requests/sec" | sed 's/^/  submit: /'
for _ in $(seq "$workers"); do python3 benchmarks/jobs-worker.py "$port" ext >/dev/null & done
wait $(jobs -p | tail -n "$workers")
sqlite3 "$work/data/switchboard.sqlite" <<SQL
SELECT printf('  %d jobs claimed and completed in %.2f s: %.0f jobs/s', COUNT(*),
    (MAX(j.updated_at) - MIN(m.published_at)) / 1000.0, COUNT(*) * 1000.0 / (MAX(j.updated_at) - MIN(m.published_at)))
FROM jobs j JOIN topic_messages m ON m.topic = 'jobs.' || j.id AND m."offset" = 2
WHERE j.queue = 'ext' AND j.state = 'succeeded';
SQL
