"""HTTP/1.1 on raw sockets against `switchboard serve`: RFC 9112's rules for requests, framing, pipelining."""
import json
import re
import socket
import time

import pytest


def exchange(server, payload, timeout=3, pieces=None):
    """Sends `payload` (or `pieces`, one send each) on a fresh connection; returns what comes back until
    the server closes, and whether it did."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        for piece in pieces or [payload]:
            sock.sendall(piece)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
            return received, True
        except socket.timeout:
            return received, False


def error_code(answer):
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"]


REFUSED = {
    "no Host in HTTP/1.1": (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid_host"),
    "two Hosts": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "invalid_host"),
    "Host with a path": (b"GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid_host"),
    "space before colon": (b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400, "invalid_header"),
    "obs-fold": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, "invalid_header"),
    "bare CR in a value": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400, "invalid_header"),
    "NUL in a value": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, "invalid_header"),
    "bare LF ending the request line": (b"GET /healthz HTTP/1.1\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "two spaces in the request line": (b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "non-ASCII in the target": (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_line"),
    "HTTP/2.0 on HTTP/1 framing": (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "version_not_supported"),
    "Content-Length list": (b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nab",
                            400, "invalid_content_length"),
    "Content-Length twice": (b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                             b"Content-Length: 2\r\n\r\nab", 400, "ambiguous_framing"),
    "Content-Length with Transfer-Encoding": (b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "ambiguous_framing"),
    "Transfer-Encoding in HTTP/1.0": (b"POST /v1/topics/t/messages HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                                      400, "ambiguous_framing"),
    "chunked not last": (b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                         400, "invalid_transfer_encoding"),
    "gzip coding": (b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                    501, "unsupported_transfer_coding"),
    "chunk data without CRLF": (b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"2\r\nabXY0\r\n\r\n", 400, "invalid_chunk"),
    "chunk size with a bare LF": (b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"2\nab\r\n0\r\n\r\n", 400, "invalid_chunk"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_requests_rfc_9112_forbids_are_refused_with_json_and_closed(start_server, name):
    server = start_server()
    payload, status, code = REFUSED[name]
    answer, closed = exchange(server, payload)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert error_code(answer) == code
    assert b"Connection: close\r\n" in answer
    assert closed


def test_bytes_of_another_protocol_are_closed_without_an_answer(start_server):
    server = start_server()
    assert exchange(server, b"INVALID CONNECTION PREFACE\r\n\r\n") == (b"", True)


def test_pipelined_requests_are_answered_in_order_on_one_connection(start_server):
    server = start_server()
    payload = (b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /v1/topics/p/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;x=y\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nTrailer-Field: t\r\n\r\n"
               b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer, closed = exchange(server, payload)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"201", b"404"] and closed
    _, body = server_get(server, "/v1/topics/p/messages?after=0")
    assert json.loads(json.loads(body)["messages"][0]["data"]) == {"a": 1}


def server_get(server, path):
    answer, _ = exchange(server, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, body = answer.split(b"\r\n\r\n", 1)
    return int(head.split(b" ")[1]), body


def test_a_request_sent_a_byte_at_a_time_is_served(start_server):
    server = start_server()
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer, closed = exchange(server, None, pieces=[bytes([b]) for b in request])
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'{"status":"ok"}') and closed


def test_http10_head_and_expect_continue(start_server):
    server = start_server()
    answer, closed = exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and b"\r\ndate: " in answer.lower() and closed
    answer, _ = exchange(server, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"content-length: 15\r\n" in answer.lower() and answer.endswith(b"\r\n\r\n")
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        sock.sendall(b"POST /v1/topics/c/messages HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b'{"b":2}')
        assert sock.recv(4096).startswith(b"HTTP/1.1 201 Created\r\n")


def test_two_thousand_pipelined_requests_are_all_answered(start_server):
    server = start_server()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2000 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (chunk := sock.recv(1 << 20)):
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 2001
