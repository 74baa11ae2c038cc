"""TLS termination with a development certificate: curl and Python websockets over TLS 1.2/1.3."""
import asyncio
import json
import re
import ssl
import subprocess
import time

import websockets

from conftest import BINARY, free_port


def tls_port(server):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        match = re.search(r"tls_address=\S+:(\d+) .*Listening with TLS", server.output())
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise TimeoutError(server.output())


def curl_tls(certificate, *args):
    result = subprocess.run(["curl", "-s", "--max-time", "10", "--cacert", str(certificate), "-w", "\n%{http_code}",
                             *args], capture_output=True, text=True)
    body, _, status = result.stdout.rpartition("\n")
    return int(status or 0), body


def test_self_signed_tls_serves_the_api_and_refuses_old_protocols(start_server, tmp_path):
    data = tmp_path / "data"
    server = start_server("--data", str(data), "--tls-self-signed", "--tls-listen", "127.0.0.1:0")
    port = tls_port(server)
    certificate = data / "tls" / "self-signed-cert.pem"
    base = f"https://localhost:{port}"
    assert curl_tls(certificate, f"{base}/healthz") == (200, '{"status":"ok"}')
    assert curl_tls(certificate, f"https://127.0.0.1:{port}/healthz")[0] == 200
    status, body = curl_tls(certificate, "-X", "POST", "--data-binary", "over tls", f"{base}/v1/topics/secure/messages")
    assert status == 201 and json.loads(body)["offset"] == 1
    status, body = curl_tls(certificate, "-N", "--max-time", "2", f"{base}/v1/topics/secure/events?after=0")
    assert "data: over tls" in body
    assert curl_tls(certificate, "--tlsv1.0", "--tls-max", "1.1", f"{base}/healthz")[0] == 0
    assert curl_tls(certificate, "--tlsv1.2", "--tls-max", "1.2", f"{base}/healthz")[0] == 200
    verbose = subprocess.run(["curl", "-sv", "--http1.1", "--cacert", str(certificate), f"{base}/healthz"],
                             capture_output=True, text=True).stderr
    assert "TLSv1.3" in verbose and "ALPN: server accepted http/1.1" in verbose
    # Without trusting the certificate, clients refuse it; plain HTTP on the TLS port gets nothing.
    assert subprocess.run(["curl", "-s", f"{base}/healthz"], capture_output=True).returncode != 0

    context = ssl.create_default_context(cafile=str(certificate))

    async def secure_websocket():
        async with websockets.connect(f"wss://localhost:{port}/v1/ws", ssl=context) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "secure", "after": 0}))
            frames = [json.loads(await ws.recv()) for _ in range(2)]
            assert [f.get("data") for f in frames if f["type"] == "message"] == ["over tls"]

    asyncio.run(secure_websocket())

    # The certificate is kept: a restart serves the same one.
    server.stop()
    first = certificate.read_text()
    restarted = start_server("--data", str(data), "--tls-self-signed", "--tls-listen", "127.0.0.1:0")
    assert curl_tls(certificate, f"https://localhost:{tls_port(restarted)}/healthz")[0] == 200
    assert certificate.read_text() == first


def test_certificate_files_and_their_mistakes(start_server, tmp_path):
    made = start_server("--data", str(tmp_path / "made"), "--tls-self-signed", "--tls-listen", "127.0.0.1:0")
    made.stop()
    cert, key = tmp_path / "made" / "tls" / "self-signed-cert.pem", tmp_path / "made" / "tls" / "self-signed-key.pem"
    server = start_server("--data", str(tmp_path / "d"), "--tls-cert", str(cert), "--tls-key", str(key),
                          "--tls-listen", f"127.0.0.1:{free_port()}")
    assert curl_tls(cert, f"https://localhost:{tls_port(server)}/healthz")[0] == 200
    missing = subprocess.run([str(BINARY), "serve", "--tls-cert", str(cert)], capture_output=True, text=True)
    assert missing.returncode == 2 and "tls-key" in missing.stderr
    wrong = subprocess.run([str(BINARY), "serve", "--tls-cert", str(key), "--tls-key", str(key)],
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "tls-cert" in wrong.stderr


def accepted_connections(server):
    metrics = subprocess.run(["curl", "-s", f"{server.url}/metrics"], capture_output=True, text=True).stdout
    return int(float(re.search(r"^switchboard_accepted_connections_total (\S+)", metrics, re.M).group(1)))


def test_http2_multiplexes_twenty_event_streams_on_one_connection(start_server, tmp_path):
    data = tmp_path / "data"
    server = start_server("--data", str(data), "--tls-self-signed", "--tls-listen", "127.0.0.1:0")
    port = tls_port(server)
    certificate = data / "tls" / "self-signed-cert.pem"
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
    for n in range(20):
        status, _ = curl_tls(certificate, "--http2", "-X", "POST", "--data-binary", f"story {n}",
                             f"{base}/v1/topics/news{n}/messages")
        assert status == 201
    output, _ = streams.communicate(timeout=15)
    assert sorted(line for line in output.splitlines() if line.startswith("data: ")) == \
        sorted(f"data: story {n}" for n in range(20))
    # One connection for the 20 streams, one per publish, one for this look at the metrics: 22.
    assert accepted_connections(server) - before == 22
