"""Several `serve` nodes on one PostgreSQL behind `switchboard edge`: any node serves any client, and what
one node commits reaches the clients of every other. The cluster is a throwaway one (scripts/postgres)."""
import asyncio
import collections
import hashlib
import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets

from conftest import ROOT, Server, curl
from edge_support import Edge

POSTGRES = str(ROOT / "scripts" / "postgres")


class Cluster:
    """A PostgreSQL cluster, `count` nodes sharing it (and an uploads directory), and an edge in front that
    balances round robin and checks each node's /readyz."""

    def __init__(self, directory, count, *node_args):
        self.directory = Path(directory)
        # Outside pytest's private directory, which the postgres user cannot enter.
        self.postgres_dir = Path(tempfile.mkdtemp(prefix="switchboard-cluster-postgres-"))
        self.url = subprocess.run([POSTGRES, "start", str(self.postgres_dir)], capture_output=True, text=True,
                                  check=True).stdout.strip()
        self.uploads = self.directory / "uploads"
        self.nodes = [self.start_node(index, *node_args) for index in range(count)]
        self.edge = Edge({
            "admin": "127.0.0.1:0",
            "listeners": [{"name": "web", "kind": "http", "listen": "127.0.0.1:0", "routes": [{"cluster": "nodes"}]}],
            "clusters": [{"name": "nodes", "upstreams": [{"address": f"127.0.0.1:{n.port}"} for n in self.nodes],
                          "healthCheck": {"path": "/readyz", "interval": "300ms", "healthy": 1, "unhealthy": 1}}],
        }, self.directory)
        self.web = self.edge.url("web")

    def start_node(self, index, *args):
        home = self.directory / f"node{index + 1}"
        home.mkdir(exist_ok=True)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        return Server(["--store", self.url, "--data", str(home), "--uploads-dir", str(self.uploads),
                       "--access-log", "off", *args], environment, home)

    def postgres(self, command):
        subprocess.run([POSTGRES, command, str(self.postgres_dir)], capture_output=True, check=True)

    def close(self):
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()
        self.edge.stop()
        self.postgres("remove")


@pytest.fixture
def cluster(tmp_path):
    clusters = []

    def start(count=3, *node_args):
        clusters.append(Cluster(tmp_path, count, *node_args))
        return clusters[-1]

    yield start
    for started in clusters:
        started.close()


def request(base, method, path, body=None, headers=None, timeout=10):
    """(status, headers, parsed body) over a new connection."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    payload = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return response.status, dict(response.getheaders()), parsed


def test_a_publish_on_one_node_reaches_subscribers_on_every_node_in_order(cluster):
    nodes = cluster(3)
    first, _, third = nodes.nodes
    sse = subprocess.Popen(["curl", "-sN", "--max-time", "30", f"{third.url}/v1/topics/feed/events"],
                           stdout=subprocess.PIPE, text=True)
    count = 300

    async def subscriber(base):
        # Through the edge: round robin spreads the three connections over the three nodes.
        async with websockets.connect(f"ws://{base.removeprefix('http://')}/v1/ws") as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "feed"}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            offsets = []
            while len(offsets) < count:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if frame["type"] == "message":
                    offsets.append(frame["offset"])
            return offsets

    async def run():
        watchers = [asyncio.create_task(subscriber(nodes.web)) for _ in range(3)]
        await asyncio.sleep(1)

        def publish(index):
            # Most through node 1, some through the edge: offsets interleave across nodes.
            base = first.url if index % 3 else nodes.web
            status, _, body = request(base, "POST", "/v1/topics/feed/messages", f"m{index}".encode(),
                                      {"Content-Type": "text/plain"})
            assert status == 201, body

        with ThreadPoolExecutor(6) as pool:
            await asyncio.gather(*(asyncio.to_thread(publish, index) for index in range(count)))
        return await asyncio.gather(*watchers)

    for offsets in asyncio.run(run()):
        assert offsets == list(range(1, count + 1))
    time.sleep(1)
    sse.send_signal(signal.SIGTERM)
    output = sse.communicate(timeout=10)[0]
    ids = [int(line[4:]) for line in output.splitlines() if line.startswith("id: ")]
    assert ids == list(range(1, count + 1))


def test_jobs_submitted_through_the_edge_run_exactly_once_on_workers_of_every_node(cluster):
    nodes = cluster(3)
    total = 2000
    submitted = set()
    lock = threading.Lock()

    def submit(batch):
        host, port = nodes.web.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        for index in batch:
            connection.request("POST", "/v1/jobs", json.dumps({"queue": "cluster", "type": "render",
                                                               "input": {"n": index}}))
            response = connection.getresponse()
            job = json.loads(response.read())
            assert response.status == 202, job
            with lock:
                submitted.add(job["id"])
        connection.close()

    completed = collections.defaultdict(list)
    stop = threading.Event()

    def work(node):
        host, port = node.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        while not stop.is_set():
            connection.request("POST", "/v1/queues/cluster/claim?wait=1&lease=60", b"{}")
            response = connection.getresponse()
            body = response.read()
            if response.status == 204:
                continue
            job = json.loads(body)
            assert response.status == 200, job
            connection.request("POST", f"/v1/jobs/{job['id']}/complete",
                               json.dumps({"leaseToken": job["lease"]["token"], "result": {}}))
            response = connection.getresponse()
            done = json.loads(response.read())
            assert response.status == 200 and done["state"] == "succeeded" and done["attempts"] == 1, done
            with lock:
                completed[node.port].append(job["id"])
        connection.close()

    workers = ThreadPoolExecutor(6)
    running = [workers.submit(work, node) for node in nodes.nodes for _ in range(2)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(submit, [range(start, total, 4) for start in range(4)]))
    deadline = time.monotonic() + 120
    while sum(map(len, completed.values())) < total and time.monotonic() < deadline:
        assert not any(future.done() for future in running), [f.exception() for f in running if f.done()]
        time.sleep(0.2)
    stop.set()
    for future in running:
        future.result(timeout=15)
    ids = [job for jobs in completed.values() for job in jobs]
    assert len(ids) == total and set(ids) == submitted
    assert len(completed) == 3 and all(len(jobs) > 0 for jobs in completed.values())


def test_an_idempotency_key_retried_through_another_node_is_replayed_not_rerun(cluster):
    nodes = cluster(2)
    first, second = nodes.nodes
    key = {"Idempotency-Key": "order-77"}
    job = {"queue": "orders", "type": "charge", "input": {"cents": 500}}
    status, _, created = request(first.url, "POST", "/v1/jobs", job, key)
    assert status == 202
    status, headers, replayed = request(second.url, "POST", "/v1/jobs", job, key)
    assert status == 202 and replayed["id"] == created["id"]
    assert headers.get("Idempotent-Replayed") == "true"
    status, _, other = request(second.url, "POST", "/v1/jobs", {**job, "input": {"cents": 1}}, key)
    assert status == 422 and other["error"]["code"] == "idempotency_key_reused"
    status, _, listed = request(nodes.web, "GET", "/v1/jobs?queue=orders")
    assert [j["id"] for j in listed["jobs"]] == [created["id"]]
    # While the first request still runs on node 1 (it waits for its job), a retry on node 2 is refused
    # with 409; once it has answered, the retry gets its answer.
    slow = {"type": "sleep", "input": {"seconds": 2}}
    key = {"Idempotency-Key": "report-9"}
    with ThreadPoolExecutor(1) as pool:
        first_call = pool.submit(request, first.url, "POST", "/v1/jobs?wait=10", slow, key)
        time.sleep(0.5)
        status, _, body = request(second.url, "POST", "/v1/jobs?wait=10", slow, key)
        assert status == 409 and body["error"]["code"] == "idempotency_key_in_use"
        status, _, finished = first_call.result(timeout=15)
    assert status == 200 and finished["state"] == "succeeded"
    status, headers, again = request(second.url, "POST", "/v1/jobs?wait=10", slow, key)
    assert status == 200 and again["id"] == finished["id"] and headers.get("Idempotent-Replayed") == "true"


def test_an_upload_started_on_one_node_is_resumed_on_another(cluster):
    nodes = cluster(3)
    data = os.urandom(3 * 1024 * 1024 + 17)
    status, headers, _ = request(nodes.nodes[0].url, "POST", "/v1/uploads", b"",
                                 {"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))})
    assert status == 201
    path = headers["Location"]
    tus = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    third = len(data) // 3
    for index, node in enumerate(nodes.nodes):
        status, headers, _ = request(node.url, "HEAD", path, headers={"Tus-Resumable": "1.0.0"})
        assert status == 200 and int(headers["Upload-Offset"]) == index * third
        end = len(data) if index == 2 else (index + 1) * third
        status, headers, body = request(node.url, "PATCH", path, data[index * third:end],
                                        {**tus, "Upload-Offset": str(index * third)})
        assert status == 204, body
        assert int(headers["Upload-Offset"]) == end
    status, _, content = request(nodes.nodes[1].url, "GET", f"{path}/content")
    assert status == 200 and hashlib.sha256(content).hexdigest() == hashlib.sha256(data).hexdigest()
    # A PATCH at a stale offset, on any node, is refused with the current one.
    status, headers, _ = request(nodes.nodes[0].url, "PATCH", path, b"x", {**tus, "Upload-Offset": "0"})
    assert status in (409, 403) or headers.get("Upload-Offset") == str(len(data))


def wait_until(check, timeout, message):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, message()
        time.sleep(0.2)


def test_while_postgres_is_down_nodes_answer_503_then_recover_by_themselves(cluster):
    nodes = cluster(2)
    first, second = nodes.nodes
    sse = subprocess.Popen(["curl", "-sN", "--max-time", "60", f"{second.url}/v1/topics/outage/events"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert request(first.url, "POST", "/v1/topics/outage/messages", b"before")[0] == 201
    nodes.postgres("stop")
    started = time.monotonic()
    for node in nodes.nodes:
        # Within a heartbeat or two every node knows, and says so at once.
        wait_until(lambda: request(node.url, "GET", "/readyz")[0] == 503, 15, node.output)
        status, headers, body = request(node.url, "POST", "/v1/topics/outage/messages", b"lost")
        assert status == 503 and body["error"]["code"] == "store_unavailable" and headers["Retry-After"] == "1"
        status, _, body = request(node.url, "POST", "/v1/jobs", {"queue": "q", "type": "t", "input": {}})
        assert status == 503 and body["error"]["code"] == "store_unavailable"
    assert time.monotonic() - started < 20
    # The edge's health checks take both out: it answers for them itself.
    wait_until(lambda: request(nodes.web, "GET", "/readyz")[0] in (502, 503), 10, nodes.edge.output)
    nodes.postgres("start")
    for node in nodes.nodes:
        wait_until(lambda: request(node.url, "GET", "/readyz")[0] == 200, 30, node.output)
    assert request(first.url, "POST", "/v1/topics/outage/messages", b"after")[0] == 201
    # Node 2 listens again and its subscriber hears node 1's message.
    time.sleep(1.5)
    sse.terminate()
    output = sse.communicate(timeout=10)[0]
    assert [line for line in output.splitlines() if line.startswith("data: ")] == ["data: before", "data: after"]


def test_a_node_killed_under_load_loses_nothing_acknowledged(cluster):
    nodes = cluster(3)
    victim = nodes.nodes[1]
    # A subscriber on the node about to die, and an external worker there holding two jobs.
    sse = subprocess.Popen(["curl", "-sN", "--max-time", "60", f"{victim.url}/v1/topics/load/events?after=0"],
                           stdout=subprocess.PIPE, text=True)
    jobs = [request(nodes.web, "POST", "/v1/jobs", {"queue": "held", "type": "t", "input": {"n": n}})[2]["id"]
            for n in range(4)]
    held = [request(victim.url, "POST", "/v1/queues/held/claim?lease=3", b"{}")[2]["id"] for _ in range(2)]
    assert set(held) <= set(jobs)
    acknowledged = []
    lock = threading.Lock()

    def publish(index):
        # Retried through the edge until acknowledged; the key makes a retry of a publish that did commit a
        # replay, not a second message.
        for _ in range(100):
            try:
                status, _, body = request(nodes.web, "POST", "/v1/topics/load/messages", f"m{index}".encode(),
                                          {"Content-Type": "text/plain", "Idempotency-Key": f"load-{index}"})
            except (OSError, http.client.HTTPException):
                status = 0
            if status == 201:
                with lock:
                    acknowledged.append(body["offset"])
                return
            time.sleep(0.1)
        raise AssertionError(f"m{index} never acknowledged")

    count = 400
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(publish, index) for index in range(count)]
        time.sleep(1)
        victim.process.kill()
        victim.process.wait()
        for future in futures:
            future.result(timeout=120)
    # Every message once, dense: retries were replays.
    status, _, read = request(nodes.nodes[0].url, "GET", f"/v1/topics/load/messages?after=0&limit={count + 10}")
    bodies = [m["data"] for m in read["messages"]]
    assert sorted(bodies) == sorted(f"m{index}" for index in range(count))
    assert [m["offset"] for m in read["messages"]] == list(range(1, count + 1))
    assert sorted(acknowledged) == list(range(1, count + 1))
    # The subscriber of the dead node resumes through the edge from its last id, with no gap or duplicate.
    output = sse.communicate(timeout=10)[0]
    seen = [int(line[4:]) for line in output.splitlines() if line.startswith("id: ")]
    assert seen == list(range(1, len(seen) + 1))
    resumed = subprocess.run(["curl", "-sN", "--max-time", "3", "-H", f"Last-Event-ID: {seen[-1] if seen else 0}",
                              f"{nodes.web}/v1/topics/load/events"], capture_output=True, text=True).stdout
    rest = [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")]
    assert seen + rest == list(range(1, count + 1))
    # The dead node's leased jobs run again on another node once their leases expire.
    claimed = []
    deadline = time.monotonic() + 20
    while len(claimed) < len(jobs) and time.monotonic() < deadline:
        status, _, job = request(nodes.nodes[2].url, "POST", "/v1/queues/held/claim?wait=1&lease=30", b"{}")
        if status == 200:
            claimed.append(job["id"])
            done = request(nodes.nodes[2].url, "POST", f"/v1/jobs/{job['id']}/complete",
                           {"leaseToken": job["lease"]["token"], "result": {}})
            assert done[0] == 200
    assert sorted(claimed) == sorted(jobs)
    for job in held:
        assert request(nodes.web, "GET", f"/v1/jobs/{job}")[2]["attempts"] == 2
