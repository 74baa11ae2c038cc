"""Topics with real clients: curl for publish, polls and SSE, Python websockets for /v1/ws."""
import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import http.client
import socket

import websockets

from conftest import curl, metric


def publish(server, topic, data, *extra):
    status, body = curl("-X", "POST", "--data-binary", data, *extra, f"{server.url}/v1/topics/{topic}/messages")
    assert status == 201, body
    return json.loads(body)


def test_publish_answers_201_with_dense_offsets(start_server):
    server = start_server()
    first = publish(server, "orders", "one")
    second = publish(server, "orders", "two")
    assert (first["topic"], first["offset"], second["offset"]) == ("orders", 1, 2)
    assert first["id"] != second["id"] and first["timestamp"] > 0


def test_short_poll_returns_messages_after_an_offset(start_server):
    server = start_server()
    for text in ("a", "b", "c"):
        publish(server, "t", text, "-H", "Content-Type: text/plain")
    status, body = curl(f"{server.url}/v1/topics/t/messages?after=1&limit=5")
    answer = json.loads(body)
    assert status == 200
    assert [m["data"] for m in answer["messages"]] == ["b", "c"]
    assert [m["offset"] for m in answer["messages"]] == [2, 3]
    assert answer["messages"][0]["contentType"] == "text/plain"
    assert (answer["earliestOffset"], answer["latestOffset"], answer["next"]) == (1, 3, 3)


def test_unknown_topic_reads_empty(start_server):
    server = start_server()
    status, body = curl(f"{server.url}/v1/topics/nobody-here/messages")
    assert status == 200 and json.loads(body)["messages"] == []


def test_long_poll_waits_for_the_next_message(start_server):
    server = start_server()
    publish(server, "t", "old")
    threading.Timer(0.5, lambda: publish(server, "t", "new")).start()
    started = time.monotonic()
    status, body = curl(f"{server.url}/v1/topics/t/messages?after=1&wait=10")
    assert status == 200
    assert [m["data"] for m in json.loads(body)["messages"]] == ["new"]
    assert 0.3 < time.monotonic() - started < 5


def test_long_poll_times_out_with_an_empty_list(start_server):
    server = start_server()
    started = time.monotonic()
    status, body = curl(f"{server.url}/v1/topics/quiet/messages?after=0&wait=0.5")
    assert status == 200 and json.loads(body)["messages"] == []
    assert time.monotonic() - started >= 0.45


def test_sse_resumes_from_last_event_id_and_streams_live(start_server):
    server = start_server()
    for text in ("one", "two", "three"):
        publish(server, "feed", text)
    curl_sse = subprocess.Popen(
        ["curl", "-sN", "--max-time", "4", "-H", "Last-Event-ID: 1", f"{server.url}/v1/topics/feed/events"],
        stdout=subprocess.PIPE, text=True,
    )
    time.sleep(0.7)
    publish(server, "feed", "four\nlines")
    output, _ = curl_sse.communicate()
    assert output.startswith("retry: 2000\n\n")
    assert "id: 2\ndata: two\n\n" in output
    assert "id: 3\ndata: three\n\n" in output
    assert "id: 4\ndata: four\ndata: lines\n\n" in output
    assert "data: one" not in output


def test_sse_sends_heartbeats(start_server):
    server = start_server("--sse-heartbeat", "200ms")
    result = subprocess.run(
        ["curl", "-sN", "--max-time", "1", f"{server.url}/v1/topics/idle/events"], capture_output=True, text=True
    )
    assert result.stdout.count(": heartbeat\n\n") >= 2


def test_consumer_group_reads_from_its_committed_offset(start_server):
    server = start_server()
    for text in ("a", "b", "c"):
        publish(server, "jobs", text)
    base = f"{server.url}/v1/topics/jobs/groups/workers"
    assert [m["data"] for m in json.loads(curl(f"{base}/messages")[1])["messages"]] == ["a", "b", "c"]
    status, body = curl("-X", "POST", "--data", '{"offset": 2}', f"{base}/commit")
    assert status == 200 and json.loads(body)["offset"] == 2
    assert [m["data"] for m in json.loads(curl(f"{base}/messages")[1])["messages"]] == ["c"]
    status, body = curl("-X", "POST", "--data", "nonsense", f"{base}/commit")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_body"


def test_retention_trims_and_says_where_the_log_starts(start_server):
    server = start_server()
    for index in range(5):
        publish(server, "short", f"m{index}")
    assert server.stop() == 0
    # Retention runs when the node starts and then on its interval.
    server = start_server("--retention-messages", "2")
    deadline = time.monotonic() + 10
    answer = {}
    while time.monotonic() < deadline and answer.get("earliestOffset") != 4:
        answer = json.loads(curl(f"{server.url}/v1/topics/short/messages")[1])
        time.sleep(0.1)
    assert answer["earliestOffset"] == 4
    assert [m["data"] for m in answer["messages"]] == ["m3", "m4"]
    status, body = curl(f"{server.url}/v1/topics/short/messages?after=1")
    error = json.loads(body)["error"]
    assert status == 410 and error["code"] == "offset_trimmed" and "after=3" in error["message"]
    sse = subprocess.run(
        ["curl", "-sN", "--max-time", "1", "-H", "Last-Event-ID: 0", f"{server.url}/v1/topics/short/events"],
        capture_output=True, text=True,
    )
    assert 'event: trimmed\nid: 3\ndata: {"earliestOffset":4}' in sse.stdout
    assert "id: 4\ndata: m3" in sse.stdout


def test_bad_input_gets_json_errors(start_server):
    server = start_server("--max-message-bytes", "1KiB")
    cases = [
        (("-X", "POST", "--data", "x", f"{server.url}/v1/topics/bad%20name/messages"), 400, "topic_name_invalid"),
        (("-X", "POST", "--data-binary", "x" * 2000, f"{server.url}/v1/topics/t/messages"), 413, "body_too_large"),
        ((f"{server.url}/v1/topics/t/messages?after=-1",), 400, "invalid_parameter"),
        ((f"{server.url}/v1/topics/t/messages?limit=0",), 400, "invalid_parameter"),
        ((f"{server.url}/v1/topics/t/messages?wait=forever",), 400, "invalid_parameter"),
        ((f"{server.url}/v1/ws",), 426, "websocket_required"),
    ]
    for args, status, code in cases:
        got_status, body = curl(*args)
        assert (got_status, json.loads(body)["error"]["code"]) == (status, code), args


def test_websocket_multiplexes_topics_publishes_and_reports_errors(start_server):
    server = start_server()
    publish(server, "a", "backlog")

    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/ws") as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "a", "after": 0}))
            await ws.send(json.dumps({"op": "subscribe", "topic": "b"}))
            frames = [json.loads(await ws.recv()) for _ in range(3)]
            assert {f["type"] for f in frames} == {"subscribed", "message"}
            assert [f["data"] for f in frames if f["type"] == "message"] == ["backlog"]
            await ws.send("{broken")
            assert json.loads(await ws.recv())["code"] == "invalid_json"
            await ws.send(json.dumps({"op": "publish", "topic": "b", "data": "over ws", "ref": "r1"}))
            got = [json.loads(await ws.recv()) for _ in range(2)]
            assert {g["type"] for g in got} == {"published", "message"}
            assert [g for g in got if g["type"] == "published"][0]["ref"] == "r1"
            publish(server, "a", "from curl")
            frame = json.loads(await ws.recv())
            assert (frame["topic"], frame["offset"], frame["data"]) == ("a", 2, "from curl")
            await ws.send(json.dumps({"op": "unsubscribe", "topic": "a"}))
            assert json.loads(await ws.recv())["type"] == "unsubscribed"
            await ws.send(json.dumps({"op": "subscribe", "topic": "bad name"}))
            assert json.loads(await ws.recv())["code"] == "topic_name_invalid"
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)

    asyncio.run(session())


def test_websocket_limits_subscriptions_per_connection(start_server):
    server = start_server()

    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/ws") as ws:
            for index in range(101):
                await ws.send(json.dumps({"op": "subscribe", "topic": f"t{index}"}))
            frames = [json.loads(await ws.recv()) for _ in range(101)]
            errors = [f for f in frames if f["type"] == "error"]
            assert [e["code"] for e in errors] == ["too_many_subscriptions"]

    asyncio.run(session())


def test_offsets_at_the_end_of_the_integers_are_refused_not_overflowed(start_server):
    server = start_server()
    largest = 2**63 - 1  # no offset can follow it
    status, body = curl(f"{server.url}/v1/topics/edge/messages?after={largest}")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_parameter"
    status, body = curl(f"{server.url}/v1/topics/edge/messages?after={largest - 1}")
    assert status == 200 and json.loads(body)["messages"] == []
    status, body = curl("-H", f"Last-Event-ID: {largest}", f"{server.url}/v1/topics/edge/events")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_parameter"
    status, body = curl("-X", "POST", "-d", json.dumps({"offset": largest}), f"{server.url}/v1/topics/edge/groups/g/commit")
    assert status == 400
    assert curl("-X", "POST", "-d", json.dumps({"offset": largest - 1}),
                f"{server.url}/v1/topics/edge/groups/g/commit")[0] == 200
    assert curl(f"{server.url}/v1/topics/edge/groups/g/messages")[0] == 200

    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/ws") as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "edge", "after": largest}))
            assert json.loads(await ws.recv())["code"] == "invalid_parameter"

    asyncio.run(session())
    status, body = curl("-X", "POST", "-H", "Content-Type: application/json",
                        "-d", json.dumps({"type": "sleep", "input": {"seconds": 0}, "uniqueKey": "k",
                                           "uniqueForSeconds": 9300000000000000}),
                        f"{server.url}/v1/jobs")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_body"
    assert curl(f"{server.url}/healthz")[0] == 200


def test_server_owned_topics_refuse_client_publishes_on_every_transport(start_server):
    # Job events (`jobs.*`) and upload announcements (`uploads`) are written by the server only: a client
    # must not be able to forge "upload finished" or "job succeeded".
    server = start_server()
    for topic in ("uploads", "jobs.0190d3c4-0000-7000-8000-000000000000"):
        status, body = curl("-X", "POST", "--data-binary", "forged", f"{server.url}/v1/topics/{topic}/messages")
        assert status == 403 and json.loads(body)["error"]["code"] == "topic_reserved", body

    async def session():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/ws") as ws:
            await ws.send(json.dumps({"op": "publish", "topic": "uploads", "data": "forged", "ref": "f"}))
            frame = json.loads(await ws.recv())
            assert (frame["type"], frame["code"], frame["ref"]) == ("error", "topic_reserved", "f")
            await ws.send(json.dumps({"op": "subscribe", "topic": "uploads"}))  # reading stays open
            assert json.loads(await ws.recv())["type"] == "subscribed"

    asyncio.run(session())
    status, body = curl(f"{server.url}/v1/topics/uploads/messages?after=0")
    assert status == 200 and json.loads(body)["messages"] == []
    # Names that only start like a reserved one are the client's.
    assert curl("-X", "POST", "--data-binary", "ok", f"{server.url}/v1/topics/uploads-mine/messages")[0] == 201


def test_kill_9_loses_no_acknowledged_message(start_server, tmp_path):
    server = start_server()
    acknowledged = {}
    lock = threading.Lock()
    stop = threading.Event()

    def publisher(name):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        index = 0
        while not stop.is_set():
            body = f"{name}-{index}".encode()
            try:
                connection.request("POST", "/v1/topics/crash/messages", body=body)
                response = connection.getresponse()
                answer = json.loads(response.read())
            except Exception:
                return
            if response.status == 201:
                with lock:
                    acknowledged[answer["offset"]] = body
            index += 1

    threads = [threading.Thread(target=publisher, args=(f"p{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acknowledged) > 50

    restarted = start_server()
    stored = {}
    after = 0
    while True:
        answer = json.loads(curl(f"{restarted.url}/v1/topics/crash/messages?after={after}&limit=1000")[1])
        if not answer["messages"]:
            break
        for message in answer["messages"]:
            stored[message["offset"]] = message["data"].encode()
        after = answer["next"]
    assert sorted(stored) == list(range(1, len(stored) + 1))
    for offset, body in acknowledged.items():
        assert stored.get(offset) == body


def test_cli_publish_and_subscribe_over_every_transport(start_server):
    from conftest import BINARY
    server = start_server()
    environment = {**os.environ, "SWITCHBOARD_URL": server.url}
    first = subprocess.run([str(BINARY), "publish", "cli", "first"], capture_output=True, text=True, env=environment)
    assert first.returncode == 0 and json.loads(first.stdout)["offset"] == 1
    second = subprocess.run([str(BINARY), "publish", "cli", "-"], input="second", capture_output=True, text=True,
                            env=environment)
    assert json.loads(second.stdout)["offset"] == 2
    for via in ("poll", "long-poll", "sse", "ws"):
        result = subprocess.run(
            [str(BINARY), "subscribe", "cli", "--via", via, "--after", "0", "--count", "2"],
            capture_output=True, text=True, env=environment, timeout=20,
        )
        assert result.stdout.splitlines() == ["1\tfirst", "2\tsecond"], via
    bad = subprocess.run([str(BINARY), "publish", "bad name", "x"], capture_output=True, text=True, env=environment)
    assert bad.returncode == 1 and "topic_name_invalid" in bad.stderr


def test_sigterm_ends_open_streams_promptly(start_server):
    server = start_server()
    sse = subprocess.Popen(["curl", "-sN", f"{server.url}/v1/topics/x/events"], stdout=subprocess.PIPE, text=True)
    closed = {}

    async def websocket_client():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/ws") as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "x"}))
            await ws.recv()
            await asyncio.sleep(0.5)
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as error:
                closed["code"] = error.rcvd.code if error.rcvd else None

    client = threading.Thread(target=lambda: asyncio.run(websocket_client()))
    client.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 5, "open streams held up shutdown"
    client.join(10)
    assert closed.get("code") == 1001
    assert sse.wait(5) == 0


def subscribers(server):
    metrics = curl(f"{server.url}/metrics")[1]
    return int(float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("switchboard_subscribers "))))


def test_streams_release_their_subscriptions_when_clients_go(start_server):
    server = start_server()
    for http_version in ("--http1.1", "--http1.0"):  # keep-alive, and Connection: close
        subprocess.run(
            ["curl", "-sN", http_version, "--max-time", "0.5", f"{server.url}/v1/topics/gone/events"],
            capture_output=True,
        )
    deadline = time.monotonic() + 5
    while subscribers(server) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert subscribers(server) == 0


def test_a_long_poll_whose_client_leaves_is_ended_at_once(start_server):
    # A client that goes is seen at once: its connection closes and the wait is dropped, not held until
    # `wait` runs out.
    server = start_server()
    before = metric(server, "switchboard_open_connections")  # this look's own connection
    with socket.create_connection(("127.0.0.1", server.port)) as waiting:
        waiting.sendall(b"GET /v1/topics/left/messages?after=0&wait=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while metric(server, "switchboard_open_connections") != before + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(server, "switchboard_open_connections") == before + 1
    deadline = time.monotonic() + 5
    while metric(server, "switchboard_open_connections") != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, "switchboard_open_connections") == before


def test_bench_counts_every_delivery_exactly(start_server):
    from conftest import BINARY
    server = start_server("--access-log", "off")
    for via in ("ws", "sse", "grpc"):
        result = subprocess.run(
            [str(BINARY), "bench", "--url", server.url, "--grpc", server.grpc_target, "--subscribers", "20",
             "--rate", "20", "--seconds", "2", "--via", via],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "published 40, deliveries 800 of 800 (100.000 %)" in result.stdout, result.stdout
        assert "missing 0  duplicated 0  out-of-order 0" in result.stdout
