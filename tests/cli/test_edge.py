"""`switchboard edge` as a user runs it: curl and Python clients through each listener kind to real upstreams
on loopback, balancing, faults, smuggling, SSRF, reloads."""
import asyncio
import collections
import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import websockets

from conftest import BINARY, accepted_connections, tls_port, wait_for_log
from edge_support import Edge, Upstream, UpstreamProcess, http_get, raw_exchange


@pytest.fixture
def upstreams():
    started = []

    def start(count, first_name="a"):
        new = [Upstream(chr(ord(first_name) + index)) for index in range(count)]
        started.extend(new)
        return new

    yield start
    for upstream in started:
        upstream.stop()


@pytest.fixture
def start_edge(tmp_path):
    edges = []

    def start(config):
        edge = Edge(config, tmp_path)
        edges.append(edge)
        return edge

    yield start
    for edge in edges:
        if edge.process.poll() is None:
            edge.process.kill()
            edge.process.wait()


def http_listener(*routes, name="web", **extra):
    return {"name": name, "kind": "http", "listen": "127.0.0.1:0", "routes": list(routes), **extra}


def cluster(name, targets, **extra):
    return {"name": name, "upstreams": [{"address": t.address} for t in targets], **extra}


def test_reverse_proxy_routes_balances_and_sets_forwarding_headers(start_edge, upstreams):
    a, b, c = upstreams(3)
    edge = start_edge({
        "admin": "127.0.0.1:0",
        "listeners": [http_listener({"host": "api.test", "pathPrefix": "/v2", "cluster": "v2"},
                                    {"header": {"name": "X-Canary", "value": "1"}, "cluster": "v2"},
                                    {"pathPrefix": "/", "cluster": "main"})],
        "clusters": [cluster("main", [a, b]), cluster("v2", [c])],
    })
    web = edge.url("web")
    seen = collections.Counter(http_get(f"{web}/items")[1]["upstream"] for _ in range(100))
    assert seen == {"a": 50, "b": 50}
    assert http_get(f"{web}/v2/x", {"Host": "api.test"})[1]["upstream"] == "c"
    assert http_get(f"{web}/v2/x", {"Host": "other.test"})[1]["upstream"] in "ab"
    assert http_get(f"{web}/any", {"X-Canary": "1"})[1]["upstream"] == "c"
    result = subprocess.run(["curl", "-s", f"{web}/h", "-H", "Host: shop.test", "-H", "X-Forwarded-For: 6.6.6.6",
                             "-H", "Connection: keep-alive, X-Drop", "-H", "X-Drop: secret",
                             "-H", "Forwarded: for=6.6.6.6"], capture_output=True, text=True)
    headers = {k.lower(): v for k, v in json.loads(result.stdout)["headers"].items()}
    assert headers["host"] == "shop.test"
    assert headers["x-forwarded-for"] == "127.0.0.1"  # the client's own claim is not trusted
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-host"] == "shop.test"
    assert headers["forwarded"] == 'for=127.0.0.1;proto=http;host="shop.test"'
    assert "x-drop" not in headers  # named by Connection: hop-by-hop
    # HTTP/2 clients (h2c here) reach HTTP/1.1 upstreams.
    result = subprocess.run(["curl", "-s", "--http2-prior-knowledge", f"{web}/over-h2"], capture_output=True, text=True)
    assert json.loads(result.stdout)["path"] == "/over-h2"
    # A POST body goes through.
    result = subprocess.run(["curl", "-s", "-X", "POST", "--data", "hello", f"{web}/post"], capture_output=True, text=True)
    assert json.loads(result.stdout)["body"] == "hello"
    assert http_get(f"{edge.url('admin')}/healthz")[0] == 200
    assert 'switchboard_edge_upstream_requests_total{cluster="main",upstream="' + a.address + '"}' in edge.metrics()


def test_trusted_forwarding_headers_are_appended_to(start_edge, upstreams):
    (a,) = upstreams(1)
    edge = start_edge({"listeners": [http_listener({"cluster": "main"}, trustForwarded=True)],
                       "clusters": [cluster("main", [a])]})
    headers = http_get(f"{edge.url('web')}/", {"X-Forwarded-For": "198.51.100.1"})[1]["headers"]
    assert headers["X-Forwarded-For"] == "198.51.100.1, 127.0.0.1"


def test_sse_streams_through_without_buffering(start_edge, upstreams):
    (a,) = upstreams(1)
    edge = start_edge({"listeners": [http_listener({"cluster": "main"}, executionModel="single")],
                       "clusters": [cluster("main", [a])]})
    stream = subprocess.Popen(["curl", "-s", "-N", f"{edge.url('web')}/sse"], stdout=subprocess.PIPE, text=True)
    arrivals = []
    for line in stream.stdout:
        if line.startswith("data:"):
            arrivals.append((time.monotonic(), line.strip()))
    stream.wait(timeout=10)
    assert [text for _, text in arrivals] == ["data: tick 0", "data: tick 1", "data: tick 2"]
    # Each event arrived when it was sent, half a second apart, not all at the end.
    assert arrivals[1][0] - arrivals[0][0] > 0.3 and arrivals[2][0] - arrivals[1][0] > 0.3


def test_each_algorithm_shares_as_it_should(start_edge, upstreams):
    a, b, c = upstreams(3)
    edge = start_edge({
        "listeners": [http_listener({"pathPrefix": "/weighted", "cluster": "weighted"},
                                    {"pathPrefix": "/least", "cluster": "least"},
                                    {"pathPrefix": "/p2c", "cluster": "p2c"},
                                    {"pathPrefix": "/header", "cluster": "by-header"},
                                    {"pathPrefix": "/cookie", "cluster": "by-cookie"})],
        "clusters": [
            {"name": "weighted", "balance": "weighted",
             "upstreams": [{"address": a.address, "weight": 3}, {"address": b.address, "weight": 1}]},
            cluster("least", [a, b, c], balance="least-connections"),
            cluster("p2c", [a, b, c], balance="power-of-two"),
            cluster("by-header", [a, b, c], balance="hash", hashOn={"header": "X-User"}),
            cluster("by-cookie", [a, b, c], balance="hash", hashOn={"cookie": "session"}),
        ],
    })
    web = edge.url("web")

    def shares(path, count, headers=None):
        return collections.Counter(http_get(f"{web}{path}", headers)[1]["upstream"] for _ in range(count))

    assert shares("/weighted", 400) == {"a": 300, "b": 100}
    # One request at a time: every upstream is idle at each pick, so least connections spreads them all.
    assert set(shares("/least", 60)) == {"a", "b", "c"}
    assert all(40 <= n <= 160 for n in shares("/p2c", 300).values())
    for user in ("ann", "bob", "cy", "dee"):
        assert len(shares("/header", 10, {"X-User": user})) == 1
    owners = {user: http_get(f"{web}/header", {"X-User": user})[1]["upstream"] for user in map(str, range(60))}
    assert set(owners.values()) == {"a", "b", "c"}
    assert len(shares("/cookie", 10, {"Cookie": "theme=dark; session=s-42"})) == 1


def test_a_killed_upstream_fails_no_idempotent_request_and_is_ejected_then_returns(start_edge):
    a, b, c = (UpstreamProcess(name) for name in "abc")
    edge = start_edge({
        "admin": "127.0.0.1:0",
        "listeners": [http_listener({"cluster": "main"})],
        "clusters": [cluster("main", [a, b, c], healthCheck={"interval": "300ms", "healthy": 1, "unhealthy": 2},
                             eject={"failures": 1, "ejectFor": "1s"})],
    })
    web = edge.url("web")
    failures, answers = [], collections.Counter()

    def load():
        for _ in range(150):
            status, body = http_get(f"{web}/load")
            if status != 200:
                failures.append((status, body))
            else:
                answers[body["upstream"]] += 1
            time.sleep(0.005)

    clients = [threading.Thread(target=load) for _ in range(4)]
    for client in clients:
        client.start()
    time.sleep(0.5)
    b.kill()
    killed_at = sum(answers.values())
    for client in clients:
        client.join(timeout=60)
    try:
        assert failures == []
        assert answers["a"] > 0 and answers["c"] > 0 and 0 < answers["b"] <= killed_at
        metrics = edge.metrics()
        assert re.search(rf'^switchboard_edge_upstream_healthy\{{cluster="main",upstream="{b.address}"\}} 0(\.0)?$',
                         metrics, re.M), metrics
        assert "Upstream unhealthy" in edge.output()
        # Back on its port, it passes its check and takes requests again.
        revived = UpstreamProcess("b", port=b.port)
        deadline = time.monotonic() + 10
        while "b" not in {http_get(f"{web}/back")[1]["upstream"] for _ in range(6)}:
            assert time.monotonic() < deadline, edge.output()
            time.sleep(0.2)
        assert "Upstream healthy again" in edge.output()
        revived.kill()
    finally:
        a.kill()
        c.kill()


def test_a_hanging_upstream_trips_the_first_byte_timeout(start_edge):
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)
    address = f"127.0.0.1:{hanging.getsockname()[1]}"
    edge = start_edge({"listeners": [http_listener({"cluster": "slow"})],
                       "clusters": [{"name": "slow", "upstreams": [{"address": address}],
                                     "timeouts": {"firstByte": "1s"}, "retries": {"attempts": 0}}]})
    started = time.monotonic()
    status, body = http_get(f"{edge.url('web')}/wait")
    assert status == 504 and body["error"]["code"] == "upstream_timeout"
    assert 0.9 < time.monotonic() - started < 5
    hanging.close()


def test_clients_that_give_up_mid_request_do_not_eject_the_upstream(start_edge):
    # An upstream that takes half a second over each POST; clients that give up after 0.1 s.
    slow = socket.socket()
    slow.bind(("127.0.0.1", 0))
    slow.listen(64)
    address = f"127.0.0.1:{slow.getsockname()[1]}"

    def serve():
        while True:
            try:
                connection, _ = slow.accept()
            except OSError:
                return

            def answer(connection=connection):
                with connection:
                    connection.recv(65536)
                    time.sleep(0.5)
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            threading.Thread(target=answer, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    edge = start_edge({"admin": "127.0.0.1:0", "listeners": [http_listener({"cluster": "slow"})],
                       "clusters": [{"name": "slow", "upstreams": [{"address": address}],
                                     "eject": {"failures": 2, "ejectFor": "30s"}}]})
    for _ in range(5):
        subprocess.run(["curl", "-s", "--max-time", "0.1", "-X", "POST", "--data-binary", "x" * 100,
                        f"{edge.url('web')}/work"], capture_output=True)
    time.sleep(0.6)
    result = subprocess.run(["curl", "-s", "-X", "POST", "--data-binary", "x", f"{edge.url('web')}/work"],
                            capture_output=True, text=True)
    assert result.stdout == "ok"
    assert re.search(r"^switchboard_edge_upstream_ejections_total\{[^}]*\} 0(\.0)?$", edge.metrics(), re.M), \
        edge.metrics()
    slow.close()


def test_an_upstream_that_never_accepts_trips_the_connect_timeout(start_edge):
    # A listener whose accept queue is full: the kernel drops further SYNs, so connecting hangs.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    address = f"127.0.0.1:{full.getsockname()[1]}"
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(full.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    edge = start_edge({"listeners": [http_listener({"cluster": "stuck"})],
                       "clusters": [{"name": "stuck", "upstreams": [{"address": address}],
                                     "timeouts": {"connect": "500ms"}, "retries": {"attempts": 0}}]})
    started = time.monotonic()
    status, body = http_get(f"{edge.url('web')}/never")
    assert status == 502 and body["error"]["code"] == "upstream_unavailable"
    assert 0.4 < time.monotonic() - started < 4
    for sock in fillers + [full]:
        sock.close()


def test_an_upstream_that_goes_silent_mid_response_trips_the_idle_timeout(start_edge):
    stalling = socket.socket()
    stalling.bind(("127.0.0.1", 0))
    stalling.listen(4)
    held = []

    def serve():
        conn, _ = stalling.accept()
        held.append(conn)
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")

    threading.Thread(target=serve, daemon=True).start()
    address = f"127.0.0.1:{stalling.getsockname()[1]}"
    edge = start_edge({"listeners": [http_listener({"cluster": "silent"})],
                       "clusters": [{"name": "silent", "upstreams": [{"address": address}],
                                     "timeouts": {"idle": "1s"}}]})
    started = time.monotonic()
    result = subprocess.run(["curl", "-s", "-N", "--max-time", "10", f"{edge.url('web')}/stream"],
                            capture_output=True, text=True)
    assert result.stdout == "hello" and result.returncode != 0  # the stream is cut, not ended cleanly
    assert 0.9 < time.monotonic() - started < 5
    stalling.close()


SMUGGLING = {
    "CL.TE": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "TE.CL": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    "TE.TE obfuscated": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "duplicate Content-Length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "obs-fold TE": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "TE not ending in chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "TE in HTTP/1.0": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_smuggling_payloads_are_refused_and_never_reach_the_upstream(start_edge, upstreams, name):
    (a,) = upstreams(1)
    edge = start_edge({"listeners": [http_listener({"cluster": "main"})], "clusters": [cluster("main", [a])]})
    answer = raw_exchange(edge.ports["web"], SMUGGLING[name])
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b'"code":' in answer
    time.sleep(0.2)
    assert a.requests == []


def tcp_echo_server(first_line_holder=None):
    """Echoes what it reads; at EOF answers `bye` and closes. Records the first line when asked (PROXY)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                    if first_line_holder is not None and b"\r\n" in data and not first_line_holder:
                        line, _, data = data.partition(b"\r\n")
                        first_line_holder.append(line.decode())
                    conn.sendall(data)
                    data = b""
                conn.sendall(b"bye")

    threading.Thread(target=serve, daemon=True).start()
    return server, f"127.0.0.1:{server.getsockname()[1]}"


def test_tcp_listener_pumps_bytes_passes_half_close_and_sends_proxy_protocol(start_edge):
    first_lines = []
    plain, plain_address = tcp_echo_server()
    proxied, proxied_address = tcp_echo_server(first_lines)
    edge = start_edge({
        "listeners": [{"name": "l4", "kind": "tcp", "listen": "127.0.0.1:0", "cluster": "echo",
                       "executionModel": "reuseport"},
                      {"name": "l4proxy", "kind": "tcp", "listen": "127.0.0.1:0", "cluster": "echo-proxied",
                       "proxyProtocol": "v1"}],
        "clusters": [{"name": "echo", "upstreams": [{"address": plain_address}], "healthCheck": {"interval": "1s"}},
                     {"name": "echo-proxied", "upstreams": [{"address": proxied_address}]}],
    })
    payload = bytes(range(256)) * 4096  # 1 MiB
    with socket.create_connection(("127.0.0.1", edge.ports["l4"]), timeout=10) as sock:
        received = bytearray()
        reader = threading.Thread(target=lambda: [received.extend(chunk) for chunk in iter_recv(sock)])
        reader.start()
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # half-close: the upstream sees EOF, answers, then closes
        reader.join(timeout=10)
    assert bytes(received) == payload + b"bye"
    with socket.create_connection(("127.0.0.1", edge.ports["l4proxy"]), timeout=10) as sock:
        sock.sendall(b"ping")
        sock.shutdown(socket.SHUT_WR)
        assert b"".join(iter_recv(sock)) == b"pingbye"
        client_port = sock.getsockname()[1]
    assert first_lines == [f"PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {edge.ports['l4proxy']}"]
    # One access-log line per connection, with the bytes each way.
    wait_for_log(edge, r"bytes_in=1048576 bytes_out=1048579 .*l4 echo")
    plain.close()
    proxied.close()


def test_a_silent_tcp_tunnel_is_closed_after_the_idle_timeout(start_edge):
    echo, address = tcp_echo_server()
    edge = start_edge({"listeners": [{"name": "l4", "kind": "tcp", "listen": "127.0.0.1:0", "cluster": "echo"}],
                       "clusters": [{"name": "echo", "upstreams": [{"address": address}], "timeouts": {"idle": "1s"}}]})
    with socket.create_connection(("127.0.0.1", edge.ports["l4"]), timeout=10) as sock:
        sock.sendall(b"still there?")
        assert sock.recv(100) == b"still there?"
        started = time.monotonic()
        assert sock.recv(100) == b""  # nothing either way for a second: closed
        assert 0.8 < time.monotonic() - started < 5
    echo.close()


def iter_recv(sock):
    while chunk := sock.recv(65536):
        yield chunk


def test_forward_proxy_tunnels_and_relays_and_refuses_what_it_must(start_edge, upstreams, start_server, tmp_path):
    (a,) = upstreams(1)
    tls_server = start_server("--data", str(tmp_path / "tls-data"), "--tls-self-signed", "--tls-listen", "127.0.0.1:0")
    tls = tls_port(tls_server)
    certificate = tmp_path / "tls-data" / "tls" / "self-signed-cert.pem"
    edge = start_edge({"listeners": [
        {"name": "open", "kind": "forward", "listen": "127.0.0.1:0", "executionModel": "reuseport",
         "access": {"ports": [a.port, tls], "allowNetworks": ["127.0.0.0/8"]}},
        {"name": "strict", "kind": "forward", "listen": "127.0.0.1:0",
         "access": {"ports": [a.port], "user": "ann", "password": "s3cret"}},
    ]})
    proxy = f"127.0.0.1:{edge.ports['open']}"

    def curl(*args):
        result = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "--max-time", "10", *args],
                                capture_output=True, text=True)
        body, _, status = result.stdout.rpartition("\n")
        return int(status or 0), body

    status, body = curl("-x", proxy, f"http://127.0.0.1:{a.port}/relayed?q=1")
    assert status == 200 and json.loads(body)["path"] == "/relayed?q=1"
    status, body = curl("-p", "-x", proxy, "--cacert", str(certificate), f"https://localhost:{tls}/healthz")
    assert (status, body) == (200, '{"status":"ok"}')
    status, body = curl("-x", proxy, f"http://127.0.0.1:{tls + 1 if tls + 1 != a.port else tls + 2}/")
    assert status == 403 and json.loads(body)["error"]["code"] == "port_not_allowed"
    # The strict listener keeps the defaults for internal networks: loopback is refused (SSRF), and it
    # wants credentials first.
    strict = f"127.0.0.1:{edge.ports['strict']}"
    result = subprocess.run(["curl", "-si", "-x", strict, f"http://127.0.0.1:{a.port}/"], capture_output=True, text=True)
    assert "407" in result.stdout.splitlines()[0] and 'Proxy-Authenticate: Basic realm="switchboard"' in result.stdout
    status, body = curl("-x", strict, "-U", "ann:s3cret", f"http://127.0.0.1:{a.port}/")
    assert status == 403 and json.loads(body)["error"]["code"] == "destination_not_allowed"
    status, body = curl("-x", strict, "-U", "ann:wrong", f"http://127.0.0.1:{a.port}/")
    assert status == 407
    for target in ("localhost", "169.254.169.254", "[::1]"):
        status, body = curl("-p", "-x", strict, "-U", "ann:s3cret", f"http://{target}:{a.port}/")
        assert status in (403, 0), (target, status, body)
    assert a.requests == ["/relayed?q=1"]


def test_bad_config_is_one_line_per_problem_and_sighup_reloads(start_edge, upstreams, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("listeners:\n  - {name: web, kind: http, listen: nowhere, routes: [{cluster: none}]}\n")
    result = subprocess.run([str(BINARY), "edge", "--config", str(broken)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "switchboard edge: listeners[0].listen: expected HOST:PORT, got 'nowhere'",
        "switchboard edge: listeners[0].routes[0].cluster: no cluster is named none",
    ]

    a, b = upstreams(2)
    config = {"listeners": [http_listener({"cluster": "main"}, listen="127.0.0.1:0")],
              "clusters": [cluster("main", [a])]}
    edge = start_edge(config)
    web = edge.url("web")
    assert http_get(f"{web}/")[1]["upstream"] == "a"
    # Same listeners (as written), another cluster behind them.
    edge.write({**config, "clusters": [cluster("main", [b])]})
    edge.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while http_get(f"{web}/")[1]["upstream"] != "b":
        assert time.monotonic() < deadline, edge.output()
        time.sleep(0.1)
    edge.config_path.write_text("listeners: [oops")
    edge.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "Reload refused" not in edge.output():
        assert time.monotonic() < deadline, edge.output()
        time.sleep(0.1)
    assert http_get(f"{web}/")[1]["upstream"] == "b"
    assert edge.stop() == 0


def test_websocket_and_sse_of_a_switchboard_upstream_pass_through(start_edge, start_server):
    server = start_server()
    edge = start_edge({"listeners": [http_listener({"cluster": "sb"})],
                       "clusters": [{"name": "sb", "upstreams": [{"address": f"127.0.0.1:{server.port}"}]}]})
    web = edge.url("web")
    events = subprocess.Popen(["curl", "-s", "-N", "--max-time", "6", f"{web}/v1/topics/live/events"],
                              stdout=subprocess.PIPE, text=True)

    async def conversation():
        async with websockets.connect(f"ws://127.0.0.1:{edge.ports['web']}/v1/ws") as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "live"}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            for index in range(3):
                await ws.send(json.dumps({"op": "publish", "topic": "live", "data": f"m{index}", "ref": str(index)}))
            frames = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(6)]
            assert sorted(f["data"] for f in frames if f["type"] == "message") == ["m0", "m1", "m2"]
            assert sorted(f["ref"] for f in frames if f["type"] == "published") == ["0", "1", "2"]

    time.sleep(0.5)
    asyncio.run(conversation())
    output, _ = events.communicate(timeout=15)
    assert sorted(line for line in output.splitlines() if line.startswith("data: ")) == ["data: m0", "data: m1", "data: m2"]
    # An upstream that does not switch: the request is proxied as a plain one and its answer comes back.
    result = subprocess.run(["curl", "-s", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
                             f"{web}/healthz"], capture_output=True, text=True)
    assert result.stdout == '{"status":"ok"}'


def test_tls_upstreams_speak_http2_with_many_requests_on_few_connections(start_edge, start_server, tmp_path):
    server = start_server("--data", str(tmp_path / "up"), "--tls-self-signed", "--tls-listen", "127.0.0.1:0")
    certificate = tmp_path / "up" / "tls" / "self-signed-cert.pem"
    edge = start_edge({"listeners": [http_listener({"cluster": "secure"})],
                       "clusters": [{"name": "secure", "upstreams": [{"address": f"127.0.0.1:{tls_port(server)}"}],
                                     "tls": {"ca": str(certificate)}}]})
    before = accepted_connections(server)
    # Fifty requests at once from HTTP/1.1 clients, through the edge, to one HTTP/2 upstream.
    urls = [f"{edge.url('web')}/v1/topics/t{n}/messages?after=0" for n in range(50)]
    result = subprocess.run(["curl", "-s", "--parallel", "--parallel-max", "50", "-w", "%{http_code}\n"]
                            + [part for url in urls for part in ("-o", "/dev/null", url)],
                            capture_output=True, text=True, timeout=30)
    assert result.stdout.split() == ["200"] * 50
    # The look at the metrics counts one; the edge's HTTP/2 connection (or a very few) carried the fifty.
    assert accepted_connections(server) - before <= 3
    wait_for_log(server, r"GET /v1/topics/t\d+/messages\?after=0 200")


def test_tls_termination_with_alpn_on_an_http_listener(start_edge, upstreams, start_server, tmp_path):
    # A development certificate for localhost, made by `switchboard serve --tls-self-signed`.
    maker = start_server("--data", str(tmp_path / "cert"), "--tls-self-signed", "--tls-listen", "127.0.0.1:0")
    maker.stop()
    certificate = tmp_path / "cert" / "tls" / "self-signed-cert.pem"
    key = tmp_path / "cert" / "tls" / "self-signed-key.pem"
    (a,) = upstreams(1)
    edge = start_edge({"listeners": [http_listener({"cluster": "main"}, tls={"cert": str(certificate), "key": str(key)})],
                       "clusters": [cluster("main", [a])]})
    base = f"https://localhost:{edge.ports['web']}"
    for version, alpn in (("--http2", "h2"), ("--http1.1", "http/1.1")):
        result = subprocess.run(["curl", "-sv", version, "--cacert", str(certificate), f"{base}/secure"],
                                capture_output=True, text=True)
        assert f"ALPN: server accepted {alpn}" in result.stderr
        headers = json.loads(result.stdout)["headers"]
        assert headers["X-Forwarded-Proto"] == "https" and json.loads(result.stdout)["path"] == "/secure"
