"""HTTP/2: ALPN h2 on the TLS port, prior knowledge (h2c) on the cleartext one, streams multiplexed on one
connection, the limits that protect the server, and GOAWAY on graceful shutdown. Real clients: curl, httpx,
h2load, and the h2 library for what must be seen frame by frame."""
import json
import signal
import socket
import ssl
import subprocess
import threading
import time

import h2.errors
import h2.events
import httpx
import jwt
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame
from wsproto.frame_protocol import FrameProtocol, Opcode

from conftest import accepted_connections, curl, curl_tls, tls_port
from h2client import H2Client


def start_tls_server(start_server, tmp_path, *args):
    data = tmp_path / "data"
    server = start_server("--data", str(data), "--tls-self-signed", "--tls-listen", "127.0.0.1:0", *args)
    return server, tls_port(server), data / "tls" / "self-signed-cert.pem"


def test_h2c_prior_knowledge_serves_the_api_beside_http1(start_server):
    server = start_server()
    verbose = subprocess.run(["curl", "-sv", "--http2-prior-knowledge", f"{server.url}/healthz"],
                             capture_output=True, text=True)
    assert "HTTP/2 200" in verbose.stderr and verbose.stdout == '{"status":"ok"}'
    # HTTP/1.1 on the same port, unchanged.
    assert curl("--http1.1", f"{server.url}/healthz") == (200, '{"status":"ok"}')
    with httpx.Client(http1=False, http2=True, base_url=server.url) as client:
        published = client.post("/v1/topics/h2c/messages", content=b"hello")
        assert published.http_version == "HTTP/2" and published.status_code == 201
        polled = client.get("/v1/topics/h2c/messages", params={"after": 0})
        assert [m["data"] for m in polled.json()["messages"]] == ["hello"]
        assert client.get("/nope").json()["error"]["code"] == "route_not_found"
        # A long poll is a stream: it waits while other requests on the connection go on.
        waiting = {}
        poll = threading.Thread(target=lambda: waiting.update(
            r=client.get("/v1/topics/h2c/messages", params={"after": 1, "wait": 10})))
        poll.start()
        time.sleep(0.5)
        assert client.post("/v1/topics/h2c/messages", content=b"second").status_code == 201
        poll.join(timeout=10)
        assert [m["data"] for m in waiting["r"].json()["messages"]] == ["second"]
    events = subprocess.run(["curl", "-s", "-N", "--http2-prior-knowledge", "--max-time", "2",
                             f"{server.url}/v1/topics/h2c/events?after=0"], capture_output=True, text=True)
    assert "data: hello" in events.stdout and "data: second" in events.stdout


def test_h2c_can_be_switched_off_and_a_stalled_preface_is_closed(start_server):
    server = start_server("--h2c", "off")
    prior = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "5", f"{server.url}/healthz"],
                           capture_output=True, text=True)
    assert prior.stdout != '{"status":"ok"}'
    assert curl(f"{server.url}/healthz")[0] == 200

    server = start_server("--header-read-timeout", "1s")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as stalled:
        stalled.sendall(b"PRI * HTTP/2")
        started = time.monotonic()
        assert stalled.recv(100) == b""
        assert 0.5 < time.monotonic() - started < 4


def test_a_body_that_is_not_its_content_length_is_a_stream_error(start_server):
    """RFC 9113 §8.1.1: checked before any answer, also for a request that will be refused (a 405 here)."""
    server = start_server()
    client = H2Client(server.port)
    for path in ("/v1/topics/lengths/messages", "/healthz"):
        stream = client.request("POST", path, headers=[("content-length", "1")], more_to_come=True)
        client.conn.send_data(stream, b"test", end_stream=True)
        client.flush()
        reset = client.wait_for(lambda e: isinstance(e, (h2.events.StreamReset, h2.events.ResponseReceived)))
        assert isinstance(reset, h2.events.StreamReset) and reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    client.close()
    _, body = curl(f"{server.url}/v1/topics/lengths/messages?after=0")
    assert json.loads(body)["messages"] == []


def test_httpx_and_h2load_over_tls_and_h2c(start_server, tmp_path):
    server, port, certificate = start_tls_server(start_server, tmp_path)
    trust = ssl.create_default_context(cafile=str(certificate))
    with httpx.Client(http2=True, verify=trust, base_url=f"https://localhost:{port}") as client:
        response = client.post("/v1/topics/tls/messages", content=b"over h2")
        assert response.http_version == "HTTP/2" and response.status_code == 201
        upload = client.post("/v1/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(3 << 20)})
        assert upload.status_code == 201
        payload = bytes(range(256)) * (3 << 12)
        patch = client.patch(upload.headers["location"], content=payload, headers={
            "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
        assert patch.status_code == 204 and patch.headers["upload-offset"] == str(len(payload))
        assert client.get(upload.headers["location"] + "/content").content == payload
    for url in (f"https://127.0.0.1:{port}/healthz", f"{server.url}/healthz"):
        result = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", url],
                                capture_output=True, text=True, timeout=60)
        assert "2000 succeeded, 0 failed, 0 errored" in result.stdout, result.stdout
        assert "h2" in result.stdout


def test_twenty_event_streams_share_one_connection(start_server, tmp_path):
    server, port, certificate = start_tls_server(start_server, tmp_path)
    base = f"https://localhost:{port}"
    verbose = subprocess.run(["curl", "-sv", "--http2", "--cacert", str(certificate), f"{base}/healthz"],
                             capture_output=True, text=True)
    assert "ALPN: server accepted h2" in verbose.stderr and "HTTP/2 200" in verbose.stderr
    before = accepted_connections(server)
    streams = subprocess.Popen(
        ["curl", "-s", "-N", "--http2", "--parallel", "--parallel-max", "20", "--max-time", "4",
         "--cacert", str(certificate)] + [f"{base}/v1/topics/news{n}/events" for n in range(20)],
        stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    # Counted by transport: one HTTP/2 connection carrying twenty SSE streams.
    metrics = curl(f"{server.url}/metrics")[1]
    assert 'switchboard_transport_sessions{transport="http2"} 1.0' in metrics
    assert 'switchboard_transport_sessions{transport="sse"} 20.0' in metrics
    for n in range(20):
        status, _ = curl_tls(certificate, "--http2", "-X", "POST", "--data-binary", f"story {n}",
                             f"{base}/v1/topics/news{n}/messages")
        assert status == 201
    output, _ = streams.communicate(timeout=15)
    assert sorted(line for line in output.splitlines() if line.startswith("data: ")) == \
        sorted(f"data: story {n}" for n in range(20))
    # One connection for the 20 streams, one per publish, one for each look at the metrics: 23.
    assert accepted_connections(server) - before == 23


def test_settings_say_the_limits_and_an_extra_stream_is_refused(start_server):
    server = start_server("--http2-max-streams", "3", "--http2-stream-window", "128KiB",
                          "--http2-header-table", "8KiB")
    client = H2Client(server.port)
    assert client.server_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 3
    assert client.server_settings[SettingCodes.INITIAL_WINDOW_SIZE] == 128 * 1024
    assert client.server_settings[SettingCodes.HEADER_TABLE_SIZE] == 8 * 1024
    assert client.server_settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 16 * 1024
    polls = [client.request("GET", "/v1/topics/limited/messages?after=0&wait=10") for _ in range(3)]
    time.sleep(0.3)
    # A fourth stream while three are open: h2 would not send it, so it goes out as a raw frame.
    extra = HeadersFrame(polls[-1] + 2, data=client.conn.encoder.encode(
        [(":method", "GET"), (":path", "/healthz"), (":scheme", "http"), (":authority", "localhost")]),
        flags=["END_HEADERS", "END_STREAM"])
    client.sock.sendall(extra.serialize())
    # swift-nio-http2 treats it as a connection error (RFC 9113 §5.1.2 allows PROTOCOL_ERROR): GOAWAY, and
    # then, as RFC 9113 §5.4.1 requires after a GOAWAY for an error, the connection is closed. The extra
    # stream is never served, and nothing follows the GOAWAY.
    frames = list(client.frames())
    goaways = [index for index, frame in enumerate(frames) if isinstance(frame, GoAwayFrame)]
    assert goaways and frames[goaways[0]].error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert goaways[0] == len(frames) - 1, frames[goaways[0]:]
    assert all(frame.stream_id in polls for frame in frames if isinstance(frame, (HeadersFrame, DataFrame)))
    client.close()
    assert curl(f"{server.url}/healthz")[0] == 200


def test_data_beyond_the_window_is_a_flow_control_error_and_the_server_respects_the_clients(start_server):
    server = start_server()
    # The server sends no more than the client's window: 1000 bytes, then waits for a WINDOW_UPDATE.
    curl("-X", "POST", "--data", "y" * 5000, f"{server.url}/v1/topics/windows/messages")
    client = H2Client(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    stream = client.request("GET", "/v1/topics/windows/messages?after=0")
    received = 0
    client.sock.settimeout(1)
    try:
        for frame in client.frames():
            if isinstance(frame, DataFrame) and frame.stream_id == stream:
                received += len(frame.data)
    except TimeoutError:
        pass
    assert received == 1000
    client.close()

    # A client that sends past the server's window breaks the protocol: FLOW_CONTROL_ERROR.
    client = H2Client(server.port)
    stream = client.request("POST", "/v1/topics/windows/messages", headers=[("content-length", str(300_000))],
                            more_to_come=True)
    # The data goes out as raw frames, past h2's own window checks.
    body = b"z" * 300_000
    raw = b"".join(DataFrame(stream, data=body[at:at + 16384]).serialize() for at in range(0, len(body), 16384))
    try:
        client.sock.sendall(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass
    errors = [frame.error_code for frame in client.frames() if isinstance(frame, (RstStreamFrame, GoAwayFrame))]
    assert h2.errors.ErrorCodes.FLOW_CONTROL_ERROR in errors
    client.close()
    assert curl(f"{server.url}/healthz")[0] == 200


def test_a_header_list_over_the_limit_closes_the_connection(start_server):
    server = start_server("--max-header-bytes", "4KiB")
    client = H2Client(server.port)
    assert client.server_settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 4096
    client.request("GET", "/healthz", headers=[("x-big", "b" * 6000)])
    # swift-nio-http2's HPACK decoder refuses the block as a connection error.
    ended = client.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
    assert ended is not None and ended.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert client.wait_closed() == b""
    fresh = H2Client(server.port)
    assert fresh.response(fresh.request("GET", "/healthz", headers=[("x-small", "s" * 3000)]))[0] == 200


def test_rapid_reset_is_cut_off(start_server):
    server = start_server("--http2-max-resets", "50")
    client = H2Client(server.port)
    # A client within the limit is served.
    for _ in range(20):
        stream = client.request("GET", "/healthz")
        client.conn.reset_stream(stream)
    client.flush()
    assert client.response(client.request("GET", "/healthz"))[0] == 200
    # Opening and resetting streams in a loop: the connection is closed with ENHANCE_YOUR_CALM.
    try:
        for _ in range(500):
            stream = client.request("GET", "/v1/topics/reset/messages?after=0&wait=5")
            client.conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
            client.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass
    ended = client.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
    assert ended is not None and ended.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert client.wait_closed() == b""
    assert curl(f"{server.url}/healthz")[0] == 200


def test_a_header_table_larger_than_allowed_is_a_compression_error(start_server):
    server = start_server("--http2-header-table", "4096")
    client = H2Client(server.port)
    # The encoder announces a dynamic table of 64 KiB: more than the server's SETTINGS allow.
    client.conn.encoder.header_table_size = 65536
    client.request("GET", "/healthz")
    ended = client.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
    assert ended is not None and ended.error_code == h2.errors.ErrorCodes.COMPRESSION_ERROR
    assert client.wait_closed() == b""
    assert curl(f"{server.url}/healthz")[0] == 200


def test_graceful_shutdown_sends_goaway_and_lets_streams_finish(start_server):
    server = start_server()
    client = H2Client(server.port)
    poll = client.request("GET", "/v1/topics/bye/messages?after=0&wait=2")
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    # h2 closes its state at the first GOAWAY; what follows is read frame by frame.
    goaways, body, ended = [], b"", False
    for frame in client.frames():
        if isinstance(frame, GoAwayFrame):
            goaways.append((frame.last_stream_id, frame.error_code))
        elif isinstance(frame, DataFrame) and frame.stream_id == poll:
            body += frame.data
            ended = ended or "END_STREAM" in frame.flags
    # A first GOAWAY announces the shutdown; a second, after a PING round trip, names the last stream
    # served, unless the streams have finished and the connection closed before that.
    assert goaways and all(code == h2.errors.ErrorCodes.NO_ERROR for _, code in goaways)
    assert goaways[-1][0] in (poll, 2**31 - 1)
    assert ended and json.loads(body)["messages"] == []
    assert server.stop() == 0


def test_a_websocket_opens_as_an_http2_stream_by_extended_connect(start_server):
    server = start_server("--jwt-secret", "s" * 32)
    client = H2Client(server.port)
    assert client.server_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1

    def open_websocket(path):
        stream = client.conn.get_next_available_stream_id()
        client.conn.send_headers(stream, [(":method", "CONNECT"), (":protocol", "websocket"), (":path", path),
                                          (":scheme", "http"), (":authority", "localhost"),
                                          ("sec-websocket-version", "13")])
        client.flush()
        event = client.wait_for(lambda e: isinstance(e, (h2.events.ResponseReceived, h2.events.StreamEnded))
                                and e.stream_id == stream)
        return stream, dict(event.headers)[":status"]

    # Without a token the endpoint declines; with one the stream becomes a WebSocket.
    assert open_websocket("/v1/ws")[1] == "403"
    token = jwt.encode({"sub": "h2", "subscribe": ["*"], "publish": ["*"], "exp": int(time.time()) + 60},
                       "s" * 32, algorithm="HS256")
    stream, status = open_websocket(f"/v1/ws?access_token={token}")
    assert status == "200"
    frames = FrameProtocol(client=True, extensions=[])
    received = []

    def send(message):
        client.conn.send_data(stream, frames.send_data(json.dumps(message)))
        client.flush()

    def receive_until(count):
        while len(received) < count:
            event = client.wait_for(lambda e: isinstance(e, (h2.events.DataReceived, h2.events.StreamEnded))
                                    and e.stream_id == stream)
            assert isinstance(event, h2.events.DataReceived), event
            frames.receive_bytes(event.data)
            received.extend(json.loads(f.payload) for f in frames.received_frames() if f.opcode == Opcode.TEXT)

    # Subscribed first (a subscription without `after` takes messages published after it), then publish.
    send({"op": "subscribe", "topic": "h2ws"})
    receive_until(1)
    assert received[0]["type"] == "subscribed"
    send({"op": "publish", "topic": "h2ws", "data": "over one stream", "ref": "r"})
    receive_until(3)
    assert sorted(frame["type"] for frame in received) == ["message", "published", "subscribed"]
    assert [frame["data"] for frame in received if frame["type"] == "message"] == ["over one stream"]
    # Other requests go on beside it on the same connection.
    assert client.response(client.request("GET", f"/v1/topics/h2ws/messages?after=0&access_token={token}"))[0] == 200
    client.close()
