"""STUN (RFC 8489) on UDP and TCP with coturn's own client, turnutils_stunclient, and raw sockets for every
way a message can be wrong."""
import os
import re
import socket
import struct
import subprocess
import zlib

from conftest import curl, wait_for_log
from turn_client import COOKIE, attributes_of


def stun_port(server):
    return int(wait_for_log(server, r"stun_address=127\.0\.0\.1:(\d+)", timeout=30).group(1))


def request(method=0x0001, attributes=b"", transaction=None, fingerprint=True):
    """A STUN request: the header, `attributes` as given, and FINGERPRINT."""
    transaction = transaction or os.urandom(12)
    length = len(attributes) + (8 if fingerprint else 0)
    message = struct.pack("!HHI", method, length, COOKIE) + transaction + attributes
    if fingerprint:
        message += struct.pack("!HHI", 0x8028, 4, (zlib.crc32(message) ^ 0x5354554E) & 0xFFFFFFFF)
    return message


def xor_mapped(message):
    value = attributes_of(message)[0x0020]
    port = struct.unpack_from("!H", value, 2)[0] ^ (COOKIE >> 16)
    address = struct.unpack_from("!I", value, 4)[0] ^ COOKIE
    return socket.inet_ntoa(struct.pack("!I", address)), port


def test_turnutils_stunclient_learns_its_address(start_server):
    server = start_server()
    port = stun_port(server)
    result = subprocess.run(["timeout", "10", "turnutils_stunclient", "-p", str(port), "127.0.0.1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"UDP reflexive addr: 127\.0\.0\.1:\d+", result.stdout + result.stderr), result.stdout


def test_binding_over_udp_and_tcp_reports_the_senders_address(start_server):
    server = start_server()
    port = stun_port(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.bind(("127.0.0.1", 0))
        transaction = os.urandom(12)
        udp.sendto(request(transaction=transaction), ("127.0.0.1", port))
        answer = udp.recv(2048)
        assert struct.unpack_from("!H", answer)[0] == 0x0101 and answer[8:20] == transaction
        assert xor_mapped(answer) == udp.getsockname()
        assert attributes_of(answer)[0x8022] == b"Switchboard"
        assert struct.unpack_from("!I", answer, len(answer) - 4)[0] == \
            (zlib.crc32(answer[:-8]) ^ 0x5354554E) & 0xFFFFFFFF
    with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
        # Two requests in one write, then one in two pieces: framed by their lengths.
        first, second = request(), request()
        tcp.sendall(first + second[:7])
        tcp.sendall(second[7:])
        answers = b""
        while len(answers) < 40 or len(answers) < 2 * (20 + struct.unpack_from("!H", answers, 2)[0]):
            answers += tcp.recv(4096)
        size = 20 + struct.unpack_from("!H", answers, 2)[0]
        assert len(answers) == 2 * size
        assert xor_mapped(answers[:size]) == tcp.getsockname() and answers[8:20] == first[8:20]
        assert answers[size + 8:size + 20] == second[8:20]


def test_bad_messages_are_refused_or_dropped_and_the_server_goes_on(start_server):
    server = start_server()
    port = stun_port(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(0.5)
        good = request()
        for garbage in (b"", b"\x00" * 19, b"GET / HTTP/1.1\r\n\r\n", good[:-4], good[:4] + b"\x00" * 4 + good[8:],
                        good[:2] + b"\x00\x09" + good[4:], os.urandom(1400),
                        good[:-1] + bytes([good[-1] ^ 1])):  # a FINGERPRINT that does not match
            udp.sendto(garbage, ("127.0.0.1", port))
            try:
                assert False, f"answered {udp.recv(2048)!r} to {garbage[:20]!r}"
            except socket.timeout:
                pass
        # A comprehension-required attribute the server does not know: 420 naming it.
        udp.sendto(request(attributes=struct.pack("!HH", 0x7777, 4) + b"abcd"), ("127.0.0.1", port))
        answer = udp.recv(2048)
        assert struct.unpack_from("!H", answer)[0] == 0x0111
        found = attributes_of(answer)
        assert found[0x0009][2:4] == bytes([4, 20]) and found[0x000A] == struct.pack("!H", 0x7777)
        # A method it does not serve (Allocate, before TURN): 400.
        udp.sendto(request(method=0x0003), ("127.0.0.1", port))
        assert attributes_of(udp.recv(2048))[0x0009][2:4] == bytes([4, 0])
        # Unknown optional attributes are ignored; indications get no answer.
        udp.sendto(request(attributes=struct.pack("!HH", 0xC001, 1) + b"x\x00\x00\x00"), ("127.0.0.1", port))
        assert struct.unpack_from("!H", udp.recv(2048))[0] == 0x0101
        udp.sendto(request(method=0x0011), ("127.0.0.1", port))
        try:
            assert False, udp.recv(2048)
        except socket.timeout:
            pass
    # TCP bytes that are not STUN close the connection.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
        tcp.sendall(b"\xff" * 64)
        assert tcp.recv(100) == b""
    metrics = curl(f"{server.url}/metrics")[1]
    dropped = re.search(r'switchboard_stun_requests_total\{outcome="dropped"\} (\d+)', metrics)
    assert dropped and int(dropped.group(1)) >= 8
    assert re.search(r'switchboard_stun_requests_total\{outcome="error"\} 2', metrics)


def test_stun_listen_off(start_server):
    server = start_server("--stun-listen", "off")
    assert curl(f"{server.url}/healthz")[0] == 200
    assert "STUN listening" not in server.output()
