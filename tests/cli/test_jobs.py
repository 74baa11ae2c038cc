"""Jobs and Idempotency-Key with real clients: curl, Python websockets, the `switchboard worker` CLI."""
import asyncio
import http.client
import http.server
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import websockets

from conftest import BINARY, curl


def post_json(server, path, document, *extra):
    status, body = curl("-X", "POST", "-H", "Content-Type: application/json", "--data-binary", json.dumps(document),
                        *extra, f"{server.url}{path}")
    return status, json.loads(body) if body else None


def submit(server, document, query=""):
    status, job = post_json(server, "/v1/jobs" + query, document)
    assert status in (200, 202), job
    return job


def get_job(server, job_id, query=""):
    status, body = curl(f"{server.url}/v1/jobs/{job_id}{query}")
    assert status == 200, body
    return json.loads(body)


def wait_for(server, job_id, states, timeout=15):
    deadline = time.monotonic() + timeout
    job = get_job(server, job_id)
    while job["state"] not in states and time.monotonic() < deadline:
        job = get_job(server, job_id, f"?wait=1&version={job['version']}")
    assert job["state"] in states, job
    return job


def events(server, job_id):
    """The states announced on the job's topic, read back with a short poll."""
    status, body = curl(f"{server.url}/v1/topics/jobs.{job_id}/messages?after=0")
    assert status == 200, body
    return [json.loads(m["data"])["state"] for m in json.loads(body)["messages"]]


def cli(server, *args, **options):
    environment = {**os.environ, "SWITCHBOARD_URL": server.url}
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, env=environment, timeout=60, **options)


def test_builtin_job_is_accepted_then_runs_and_wait_makes_it_synchronous(start_server):
    server = start_server()
    status, body = curl("-i", "-X", "POST", "--data-binary", '{"type":"sleep","input":{"seconds":0.2}}',
                        f"{server.url}/v1/jobs")
    assert status == 202 and "Location: /v1/jobs/" in body
    job = json.loads(body.split("\n\n", 1)[1])
    assert job["state"] == "queued"
    assert wait_for(server, job["id"], {"succeeded"})["result"] == {"slept": 0.2}

    status, done = post_json(server, "/v1/jobs?wait=10", {"type": "sha256", "input": {"data": "hello"}})
    assert status == 200 and done["state"] == "succeeded"
    assert done["result"]["sha256"] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    status, slow = post_json(server, "/v1/jobs?wait=0.2", {"type": "sleep", "input": {"seconds": 3}})
    assert status == 202 and slow["state"] in ("queued", "running")


def test_long_poll_sse_and_websocket_follow_every_state_change(start_server):
    server = start_server()
    job = submit(server, {"queue": "mail", "type": "send", "input": {"to": "ada"}})
    sse = subprocess.Popen(["curl", "-sN", "--max-time", "8", f"{server.url}/v1/jobs/{job['id']}/events"],
                           stdout=subprocess.PIPE, text=True)
    long_poll = ThreadPoolExecutor(1).submit(get_job, server, job["id"], "?wait=10")

    async def watch():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/ws") as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": f"jobs.{job['id']}", "after": 0}))
            states = []
            while "succeeded" not in states:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "message":
                    states.append(json.loads(frame["data"])["state"])
            return states

    async def run():
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        status, claimed = await asyncio.to_thread(post_json, server, "/v1/queues/mail/claim?wait=5&lease=10", {})
        assert status == 200 and claimed["lease"]["token"]
        assert (await asyncio.to_thread(long_poll.result, 10))["state"] == "running"
        status, done = await asyncio.to_thread(post_json, server, f"/v1/jobs/{job['id']}/complete",
                                               {"leaseToken": claimed["lease"]["token"], "result": {"sent": True}})
        assert status == 200 and done["state"] == "succeeded"
        return await watcher

    assert asyncio.run(run()) == ["queued", "running", "succeeded"]
    output, _ = sse.communicate(timeout=15)
    states = [json.loads(line[6:])["state"] for line in output.splitlines() if line.startswith("data: ")]
    assert states == ["queued", "running", "succeeded"]
    assert [line for line in output.splitlines() if line.startswith("id: ")] == ["id: 1", "id: 2", "id: 3"]


def test_killed_worker_job_is_redelivered_after_its_lease_and_succeeds_once(start_server, tmp_path):
    server = start_server()
    job = submit(server, {"queue": "work", "type": "render", "input": {"page": 1}})
    stuck = subprocess.Popen(
        [str(BINARY), "worker", "--queue", "work", "--lease", "2", "--", "sh", "-c",
         f"touch {tmp_path}/attempt-$SWITCHBOARD_JOB_ATTEMPT; sleep 60"],
        env={**os.environ, "SWITCHBOARD_URL": server.url}, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not (tmp_path / "attempt-1").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stuck.send_signal(signal.SIGKILL)
    stuck.wait()
    assert get_job(server, job["id"])["state"] == "running"

    worker = cli(server, "worker", "--queue", "work", "--max-jobs", "1", "--", "python3", "-c",
                 "import json,sys; print(json.dumps({'page': json.load(sys.stdin)['page'], 'ok': True}))")
    assert worker.returncode == 0, worker.stderr
    done = wait_for(server, job["id"], {"succeeded"})
    assert done["attempts"] == 2 and done["result"] == {"page": 1, "ok": True}
    assert events(server, job["id"]) == ["queued", "running", "queued", "running", "succeeded"]


def test_kill_9_keeps_queued_running_and_scheduled_jobs(start_server, tmp_path):
    data = tmp_path / "data"
    server = start_server("--data", str(data), "--job-lease", "2s")
    queued = submit(server, {"queue": "ext", "type": "t", "input": 1})
    scheduled = submit(server, {"queue": "later", "type": "t", "input": 2, "delaySeconds": 3})
    running_external = submit(server, {"queue": "held", "type": "t", "input": 3})
    status, claimed = post_json(server, "/v1/queues/held/claim?lease=2", {})
    assert status == 200 and claimed["id"] == running_external["id"]
    running_builtin = submit(server, {"type": "sleep", "input": {"seconds": 1.5}})
    wait_for(server, running_builtin["id"], {"running"})
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()

    restarted = start_server("--data", str(data), "--job-lease", "2s")
    assert get_job(restarted, queued["id"])["state"] == "queued"
    assert get_job(restarted, scheduled["id"])["state"] == "queued"
    # The built-in job's lease expires and the built-in workers run it again.
    rerun = wait_for(restarted, running_builtin["id"], {"succeeded"})
    assert rerun["attempts"] == 2
    # The external job comes back to its queue once its lease has passed.
    status, again = post_json(restarted, "/v1/queues/held/claim?wait=10", {})
    assert status == 200 and again["id"] == running_external["id"] and again["attempts"] == 2
    status, _ = post_json(restarted, f"/v1/jobs/{again['id']}/complete", {"leaseToken": claimed["lease"]["token"]})
    assert status == 409
    status, first = post_json(restarted, "/v1/queues/ext/claim", {})
    assert status == 200 and first["id"] == queued["id"]
    status, due = post_json(restarted, "/v1/queues/later/claim?wait=10", {})
    assert status == 200 and due["id"] == scheduled["id"]
    assert due["updatedAt"] >= scheduled["runAt"]


def concurrently(count, request):
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: request(), range(count)))


def raw_post(server, path, body, key):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    connection.request("POST", path, body=body, headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read().decode(), response.getheader("Idempotent-Replayed")


def test_fifty_clients_retrying_one_key_make_one_message_and_one_job(start_server):
    server = start_server()
    answers = concurrently(50, lambda: raw_post(server, "/v1/topics/orders/messages", '{"order":7}', "order-7"))
    created = [a for a in answers if a[0] == 201]
    assert created and all(a[0] in (201, 409) for a in answers), answers
    assert len({a[1] for a in created}) == 1
    status, body = curl(f"{server.url}/v1/topics/orders/messages?after=0")
    assert len(json.loads(body)["messages"]) == 1

    document = json.dumps({"queue": "billing", "type": "charge", "input": {"cents": 500}})
    answers = concurrently(50, lambda: raw_post(server, "/v1/jobs", document, "charge-1"))
    accepted = [a for a in answers if a[0] == 202]
    assert accepted and all(a[0] in (202, 409) for a in answers), answers
    assert len({json.loads(a[1])["id"] for a in accepted}) == 1
    status, body = curl(f"{server.url}/v1/jobs?queue=billing")
    assert len(json.loads(body)["jobs"]) == 1
    # After the storm every retry is a replay.
    status, again, replayed = raw_post(server, "/v1/jobs", document, "charge-1")
    assert status == 202 and replayed == "true" and again == accepted[0][1]


def test_idempotency_key_rules(start_server):
    server = start_server()
    first = raw_post(server, "/v1/topics/t/messages", "a", "k1")
    replay = raw_post(server, "/v1/topics/t/messages", "a", "k1")
    assert first[0] == 201 and replay[:2] == first[:2] and replay[2] == "true"
    different = raw_post(server, "/v1/topics/t/messages", "b", "k1")
    assert different[0] == 422 and json.loads(different[1])["error"]["code"] == "idempotency_key_reused"
    too_long = raw_post(server, "/v1/topics/t/messages", "a", "k" * 256)
    assert too_long[0] == 400 and json.loads(too_long[1])["error"]["code"] == "idempotency_key_invalid"
    quoted = raw_post(server, "/v1/topics/t/messages", "c", '"k2"')
    assert raw_post(server, "/v1/topics/t/messages", "c", "k2")[2] == "true" and quoted[0] == 201
    # A retry while the first still runs gets 409.
    slow = '{"type":"sleep","input":{"seconds":1}}'
    running = ThreadPoolExecutor(1).submit(raw_post, server, "/v1/jobs?wait=5", slow, "slow-1")
    time.sleep(0.3)
    busy = raw_post(server, "/v1/jobs?wait=5", slow, "slow-1")
    assert busy[0] == 409 and json.loads(busy[1])["error"]["code"] == "idempotency_key_in_use"
    assert running.result()[0] == 200
    # Client errors are kept too: the same bad request gets the same 400.
    assert raw_post(server, "/v1/jobs", '{"type":"nope"}', "bad-1")[:2] == raw_post(server, "/v1/jobs", '{"type":"nope"}', "bad-1")[:2]


def test_bad_job_requests_get_clear_errors(start_server):
    server = start_server("--max-body-bytes", "1MiB")

    def error(status_and_body):
        status, body = status_and_body
        return status, (body or {}).get("error", {}).get("code")

    assert error(post_json(server, "/v1/jobs", {"type": "nope"})) == (400, "job_type_unknown")
    assert error(post_json(server, "/v1/jobs", {"type": "sleep", "input": {"seconds": "x"}})) == (400, "invalid_input")
    assert error(post_json(server, "/v1/jobs", {"type": "http.request", "input": {"url": "ftp://x"}})) == (400, "invalid_input")
    assert error(post_json(server, "/v1/jobs", {"input": 1})) == (400, "invalid_body")
    assert error(post_json(server, "/v1/jobs", {"type": "sleep", "maxAttempts": 0, "input": {"seconds": 1}})) == (400, "invalid_body")
    assert error(post_json(server, "/v1/jobs", {"queue": "bad queue", "type": "t"})) == (400, "queue_name_invalid")
    assert error(post_json(server, "/v1/jobs?wait=-1", {"type": "sleep", "input": {"seconds": 0}})) == (400, "invalid_parameter")
    status, body = curl("-X", "POST", "--data-binary", "{nope", f"{server.url}/v1/jobs")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_body"
    big = {"queue": "ext", "type": "t", "input": "x" * (2 << 20)}
    result = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "--data-binary", "@-",
                             f"{server.url}/v1/jobs"], input=json.dumps(big), capture_output=True, text=True)
    body, _, status = result.stdout.rpartition("\n")
    assert status == "413" and json.loads(body)["error"]["code"] == "body_too_large"
    assert error(post_json(server, "/v1/queues/ext/claim?wait=-2", {})) == (400, "invalid_parameter")
    assert error(post_json(server, "/v1/queues/ext/claim?lease=0", {})) == (400, "invalid_parameter")
    status, body = curl(f"{server.url}/v1/jobs/00000000-0000-0000-0000-000000000000")
    assert status == 404 and json.loads(body)["error"]["code"] == "job_not_found"
    status, body = curl(f"{server.url}/v1/jobs/not-an-id")
    assert status == 404
    status, body = curl(f"{server.url}/v1/jobs?state=lost")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_parameter"
    status, body = curl(f"{server.url}/v1/jobs?queue=no%20spaces")
    assert status == 400 and json.loads(body)["error"]["code"] == "queue_name_invalid"
    job = submit(server, {"queue": "ext", "type": "t"})
    # A UUID is the same job however its letters are cased.
    status, body = curl(f"{server.url}/v1/jobs/{job['id'].upper()}")
    assert status == 200 and json.loads(body)["id"] == job["id"]
    status, claimed = post_json(server, "/v1/queues/ext/claim", {})
    assert error(post_json(server, f"/v1/jobs/{job['id']}/complete", {"leaseToken": "forged"})) == (409, "lease_lost")
    assert error(post_json(server, f"/v1/jobs/{job['id']}/heartbeat", {"leaseToken": "forged"})) == (409, "lease_lost")
    assert error(post_json(server, f"/v1/jobs/{job['id']}/fail", {})) == (400, "invalid_body")
    status, cancelled = curl("-X", "DELETE", f"{server.url}/v1/jobs/{job['id']}")
    assert status == 200 and json.loads(cancelled)["state"] == "cancelled"
    # The worker that held it is told its lease is gone.
    assert error(post_json(server, f"/v1/jobs/{job['id']}/complete",
                           {"leaseToken": claimed["lease"]["token"]})) == (409, "lease_lost")
    status, body = curl("-X", "DELETE", f"{server.url}/v1/jobs/{job['id']}")
    assert status == 409 and json.loads(body)["error"]["code"] == "job_state_conflict"
    status, body = curl("-X", "POST", "--data-binary", "x", f"{server.url}/v1/topics/jobs.{job['id']}/messages")
    assert status == 403 and json.loads(body)["error"]["code"] == "topic_reserved"


class FlakyWebhook(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first call and 200 after, recording what it got."""
    calls = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        FlakyWebhook.calls.append(json.loads(body))
        status = 503 if len(FlakyWebhook.calls) == 1 else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_webhook_job_is_retried_after_a_5xx(start_server):
    server = start_server()
    webhook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyWebhook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
        job = submit(server, {"type": "http.request", "input": {"url": url, "body": {"event": "paid"}}})
        done = wait_for(server, job["id"], {"succeeded", "dead"})
        assert done["state"] == "succeeded" and done["attempts"] == 2
        assert done["result"] == {"status": 200, "body": "ok"}
        assert FlakyWebhook.calls == [{"event": "paid"}, {"event": "paid"}]
    finally:
        webhook.shutdown()


def test_cli_job_commands(start_server):
    server = start_server()
    done = cli(server, "job", "submit", "sha256", '{"data":"abc"}', "--wait", "10")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["sha256"].startswith("ba7816bf")
    queued = json.loads(cli(server, "job", "submit", "export", "-", "--queue", "exports", input='{"n":1}').stdout)
    assert json.loads(cli(server, "job", "status", queued["id"]).stdout)["state"] == "queued"
    listed = json.loads(cli(server, "job", "list", "--queue", "exports").stdout)
    assert [j["id"] for j in listed["jobs"]] == [queued["id"]]
    assert json.loads(cli(server, "job", "cancel", queued["id"]).stdout)["state"] == "cancelled"
    waited = cli(server, "job", "wait", queued["id"])
    assert waited.returncode == 1 and json.loads(waited.stdout)["state"] == "cancelled"
    slept = json.loads(cli(server, "job", "submit", "sleep", '{"seconds":0.3}').stdout)
    assert cli(server, "job", "wait", slept["id"]).returncode == 0
    unknown = cli(server, "job", "submit", "nope")
    assert unknown.returncode == 1 and "job_type_unknown" in unknown.stderr
    failing = json.loads(cli(server, "job", "submit", "fragile", "{}", "--queue", "q", "--max-attempts", "5").stdout)
    worker = cli(server, "worker", "--queue", "q", "--max-jobs", "1", "--", "sh", "-c", "echo nope >&2; exit 100")
    assert worker.returncode == 0
    final = json.loads(cli(server, "job", "status", failing["id"]).stdout)
    assert final["state"] == "failed" and final["error"] == "nope" and final["attempts"] == 1
