"""TLS termination with a development certificate: curl and Python websockets over TLS 1.2/1.3."""
import asyncio
import json
import socket
import time
import re
import ssl
import subprocess

import websockets

from conftest import BINARY, curl, curl_tls, free_port, tls_port, wait_for_log


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

    # The handshake is a stage of the journey: in the histograms and in the access log.
    status, metrics = curl(f"{server.url}/metrics")
    assert re.search(r'^switchboard_request_stage_seconds_count\{stage="handshake"\} [1-9]', metrics, re.M)
    wait_for_log(server, r"stages_ms=handshake=[0-9.]+,read=")

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


def test_a_client_that_never_completes_its_handshake_is_closed(start_server, tmp_path):
    server = start_server("--data", str(tmp_path / "data"), "--tls-self-signed", "--tls-listen", "127.0.0.1:0",
                          "--header-read-timeout", "1s")
    with socket.create_connection(("127.0.0.1", tls_port(server)), timeout=5) as silent:
        started = time.monotonic()
        assert silent.recv(100) == b""
        assert 0.5 < time.monotonic() - started < 4
