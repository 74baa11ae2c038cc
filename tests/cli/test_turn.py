"""TURN (RFC 8656) with coturn's own clients — turnutils_uclient relaying to turnutils_peer, over UDP and
TCP, with REST and long-term credentials — and raw sockets for the protocol's edges: authentication,
retransmissions, peer rules, quotas, the bandwidth cap and what a peer may send back."""
import json
import os
import re
import socket
import struct
import subprocess
import time

import pytest

from conftest import curl, free_port, wait_for_log
from turn_client import (ALLOCATE, CHANNEL_BIND, COOKIE, CREATE_PERMISSION, REFRESH, SECRET, SEND, TurnClient,
                         attribute, attributes_of, verifies, xor_address, xor_peer)

LOOPBACK = ("--turn-allowed-peers", "127.0.0.0/8")


def stun_port(server):
    return int(wait_for_log(server, r"stun_address=127\.0\.0\.1:(\d+)", timeout=30).group(1))


def metric_value(server, pattern):
    match = re.search("^" + pattern + r" (\S+)", curl(f"{server.url}/metrics")[1], re.M)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def echo_peer():
    """coturn's UDP echo peer on a free port of 127.0.0.1."""
    port = free_port()
    peer = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    yield port
    peer.kill()
    peer.wait()


def uclient(port, *flags, peer_port=None, messages=20, clients=2):
    """turnutils_uclient's run: (succeeded, output). It reports the messages it got back and loss."""
    args = ["timeout", "30", "turnutils_uclient", "-p", str(port), "-n", str(messages), "-m", str(clients),
            "-l", "170", *flags]
    if peer_port:
        args += ["-e", "127.0.0.1", "-r", str(peer_port)]
    result = subprocess.run([*args, "127.0.0.1"], capture_output=True, text=True)
    output = result.stdout + result.stderr
    sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n", output)
    ok = result.returncode == 0 and bool(sent) and sent[-1][0] == sent[-1][1] != "0"
    return ok, output


@pytest.mark.parametrize("transport", [[], ["-t"]], ids=["udp", "tcp"])
def test_uclient_relays_through_channels_and_send_indications_with_rest_credentials(start_server, echo_peer,
                                                                                  transport):
    server = start_server("--turn-secret", SECRET, *LOOPBACK)
    port = stun_port(server)
    for method in ([], ["-s"]):
        ok, output = uclient(port, *transport, *method, "-W", SECRET, "-u", "alice", peer_port=echo_peer)
        assert ok, output
        assert "Total lost packets 0 (0.000000%)" in output
    assert metric_value(server, r'switchboard_turn_relayed_packets_total\{direction="to_peer"\}') >= 80
    assert metric_value(server, r'switchboard_turn_relayed_packets_total\{direction="to_client"\}') >= 80


@pytest.mark.parametrize("transport", [[], ["-t"]], ids=["udp", "tcp"])
def test_uclient_client_to_client_with_a_users_file(start_server, tmp_path, transport):
    users = tmp_path / "turn-users"
    users.write_text("# name:password\nbob:hunter2\ncarol=secret\n")
    server = start_server("--turn-users", str(users), *LOOPBACK)
    port = stun_port(server)
    ok, output = uclient(port, *transport, "-y", "-u", "bob", "-w", "hunter2")
    assert ok, output
    assert "Total lost packets 0 (0.000000%)" in output
    ok, output = uclient(port, *transport, "-y", "-u", "carol", "-w", "secret", messages=5)
    assert ok, output


def test_wrong_credentials_fail_the_allocation(start_server, echo_peer, tmp_path):
    users = tmp_path / "turn-users"
    users.write_text("bob:hunter2\n")
    server = start_server("--turn-secret", SECRET, "--turn-users", str(users), *LOOPBACK)
    port = stun_port(server)
    for flags in (["-W", "wrong", "-u", "alice"], ["-u", "bob", "-w", "nothunter2"], ["-u", "nobody", "-w", "x"]):
        ok, output = uclient(port, *flags, peer_port=echo_peer, messages=3, clients=1)
        assert not ok and "Cannot complete Allocation" in output, output
    assert metric_value(server, r'switchboard_turn_refused_total\{reason="unauthenticated"\}') >= 3
    assert metric_value(server, "switchboard_turn_allocations") == 0


def test_allocate_challenges_then_answers_signed_and_retransmissions_get_the_same_answer(start_server):
    server = start_server("--turn-secret", SECRET, "--turn-relay-ports", "40100-40120", *LOOPBACK)
    client = TurnClient(stun_port(server))
    try:
        # Unsigned: 401 with the realm and a nonce.
        cls, error, found, _ = client.ask(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])), sign=False)
        assert error == 401 and found[0x0014] == b"switchboard" and found[0x0015]
        # A nonce the server did not make: 438 with a fresh one.
        client.nonce = "12345678-abcdef"
        _, error, found, _ = client.ask(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])))
        assert error == 438 and found[0x0015].decode() != "12345678-abcdef"
        # UDP is the only relay transport: 442; no REQUESTED-TRANSPORT: 400.
        _, error, _, _ = client.ask(ALLOCATE, attribute(0x0019, bytes([6, 0, 0, 0])))
        assert error == 442
        _, error, _, _ = client.ask(ALLOCATE)
        assert error == 400
        transaction = os.urandom(12)
        _, error, found, first = client.ask(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])), transaction)
        assert error is None and verifies(first, client.key)
        relay = xor_address(found[0x0016])
        assert relay[0] == "127.0.0.1" and 40100 <= relay[1] <= 40120
        assert struct.unpack("!I", found[0x000D])[0] == 600
        assert xor_address(found[0x0020]) == client.sock.getsockname()
        # The same request again: the same answer; another Allocate on this 5-tuple: 437.
        client.sock.sendto(client.message(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])), transaction=transaction),
                           client.server)
        assert xor_address(attributes_of(client.sock.recv(4096))[0x0016]) == relay
        _, error, _, _ = client.ask(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])))
        assert error == 437
        # Refresh: a lifetime over the maximum is cut to it; 0 deletes, after which requests get 437.
        _, error, found, answer = client.ask(REFRESH, attribute(0x000D, struct.pack("!I", 99999)))
        assert error is None and struct.unpack("!I", found[0x000D])[0] == 3600 and verifies(answer, client.key)
        assert metric_value(server, "switchboard_turn_allocations") == 1
        _, error, found, _ = client.ask(REFRESH, attribute(0x000D, struct.pack("!I", 0)))
        assert error is None and struct.unpack("!I", found[0x000D])[0] == 0
        _, error, _, _ = client.ask(CREATE_PERMISSION, xor_peer("127.0.0.1", 9))
        assert error == 437
        assert metric_value(server, "switchboard_turn_allocations") == 0
    finally:
        client.close()


def test_peers_that_are_not_public_are_refused_unless_allowed(start_server):
    server = start_server("--turn-secret", SECRET, "--turn-allowed-peers", "127.0.0.2/32")
    client = TurnClient(stun_port(server))
    try:
        client.allocate()
        for peer in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "169.254.169.254", "224.0.0.1",
                     "0.0.0.0", "100.64.0.1"):
            _, error, _, _ = client.ask(CREATE_PERMISSION, xor_peer(peer, 80))
            assert error == 403, peer
            _, error, _, _ = client.ask(CHANNEL_BIND, attribute(0x000C, struct.pack("!HH", 0x4001, 0))
                                        + xor_peer(peer, 80))
            assert error == 403, peer
        _, error, _, _ = client.ask(CREATE_PERMISSION, xor_peer("127.0.0.2", 80))
        assert error is None
        _, error, _, _ = client.ask(CREATE_PERMISSION, xor_peer("93.184.216.34", 80))
        assert error is None  # a public address
        # An IPv6 peer for an IPv4 relay: 443.
        v6 = struct.pack("!BBH", 0, 2, 80 ^ (COOKIE >> 16)) + bytes(16)
        _, error, _, _ = client.ask(CREATE_PERMISSION, attribute(0x0012, v6))
        assert error == 443
        assert metric_value(server, r'switchboard_turn_refused_total\{reason="forbidden_peer"\}') == 16
    finally:
        client.close()


def test_channels_permissions_and_what_peers_send_back(start_server):
    server = start_server("--turn-secret", SECRET, *LOOPBACK)
    client = TurnClient(stun_port(server))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(1)
    try:
        relay = client.allocate()
        peer_address = peer.getsockname()
        # No permission yet: the peer's datagram is dropped.
        peer.sendto(b"too early", relay)
        client.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            client.sock.recv(4096)
        client.sock.settimeout(3)
        _, error, _, _ = client.ask(CREATE_PERMISSION, xor_peer(*peer_address))
        assert error is None
        # Send indication out; a Data indication back, naming the peer.
        client.sock.sendto(client.message(SEND, xor_peer(*peer_address) + attribute(0x0013, b"hello"), cls=0x0010,
                                          sign=False), client.server)
        data, source = peer.recvfrom(4096)
        assert data == b"hello" and source == relay
        peer.sendto(b"world", relay)
        answer = client.sock.recv(4096)
        assert struct.unpack_from("!H", answer)[0] == 0x0017
        assert xor_address(attributes_of(answer)[0x0012]) == peer_address and attributes_of(answer)[0x0013] == b"world"
        # Channel numbers outside the range: 400; a bound channel carries ChannelData both ways.
        _, error, _, _ = client.ask(CHANNEL_BIND, attribute(0x000C, struct.pack("!HH", 0x3FFF, 0))
                                    + xor_peer(*peer_address))
        assert error == 400
        _, error, _, _ = client.ask(CHANNEL_BIND, attribute(0x000C, struct.pack("!HH", 0x4002, 0))
                                    + xor_peer(*peer_address))
        assert error is None
        # The same peer on another number: 400.
        _, error, _, _ = client.ask(CHANNEL_BIND, attribute(0x000C, struct.pack("!HH", 0x4003, 0))
                                    + xor_peer(*peer_address))
        assert error == 400
        client.sock.sendto(struct.pack("!HH", 0x4002, 3) + b"abc", client.server)
        assert peer.recvfrom(4096) == (b"abc", relay)
        peer.sendto(b"xyz!", relay)
        assert client.sock.recv(4096) == struct.pack("!HH", 0x4002, 4) + b"xyz!"
        # ChannelData on an unbound channel, a truncated one, and garbage: dropped, the server goes on.
        client.sock.sendto(struct.pack("!HH", 0x4005, 3) + b"abc", client.server)
        client.sock.sendto(struct.pack("!HH", 0x4002, 30) + b"abc", client.server)
        client.sock.sendto(b"\x40", client.server)
        peer.settimeout(0.5)
        with pytest.raises(socket.timeout):
            peer.recvfrom(4096)
        assert metric_value(server, r'switchboard_turn_refused_total\{reason="no_channel"\}') >= 1
        _, error, _, _ = client.ask(REFRESH)
        assert error is None
    finally:
        client.close()
        peer.close()


def test_quotas_and_the_bandwidth_cap(start_server):
    server = start_server("--turn-secret", SECRET, "--turn-user-quota", "2", "--turn-max-allocations", "3",
                          "--turn-max-bandwidth", "2000", *LOOPBACK)
    port = stun_port(server)
    clients = [TurnClient(port, username=name) for name in ("alice", "alice", "alice", "bob", "carol")]
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(0.5)
    try:
        relay = clients[0].allocate()
        clients[1].allocate()
        _, error, _, _ = clients[2].ask(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])))
        assert error == 486  # alice's two
        clients[3].allocate()
        _, error, _, _ = clients[4].ask(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])))
        assert error == 486  # three in all
        # 2,000 bytes a second: of 20 datagrams of 500 bytes sent at once, about four get through.
        first = clients[0]
        _, error, _, _ = first.ask(CHANNEL_BIND, attribute(0x000C, struct.pack("!HH", 0x4000, 0))
                                   + xor_peer(*peer.getsockname()))
        assert error is None
        for _ in range(20):
            first.sock.sendto(struct.pack("!HH", 0x4000, 500) + b"x" * 500, first.server)
        received = 0
        try:
            while True:
                assert peer.recvfrom(4096)[1] == relay
                received += 1
        except socket.timeout:
            pass
        assert 2 <= received <= 6, received
        assert metric_value(server, r'switchboard_turn_refused_total\{reason="over_budget"\}') >= 14
    finally:
        for client in clients:
            client.close()
        peer.close()


def test_a_tcp_connection_ends_its_allocation(start_server, echo_peer):
    server = start_server("--turn-secret", SECRET, *LOOPBACK)
    ok, output = uclient(stun_port(server), "-t", "-W", SECRET, "-u", "alice", peer_port=echo_peer, messages=3,
                         clients=1)
    assert ok, output
    deadline = time.monotonic() + 5
    while metric_value(server, "switchboard_turn_allocations") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_turn_settings_are_checked(start_server, tmp_path):
    bad = tmp_path / "users"
    bad.write_text("just-a-name\n")
    for args, problem in ((["--turn-users", str(bad)], "turn-users"),
                          (["--turn-relay-ports", "60000-50000"], "turn-relay-ports"),
                          (["--turn-allowed-peers", "10.0.0.0/33"], "turn-allowed-peers"),
                          (["--turn-relay-address", "not-an-ip"], "turn-relay-address")):
        with pytest.raises(RuntimeError, match=problem):
            start_server("--turn-secret", SECRET, *args)


def test_uclient_relays_over_tls_and_ice_servers_list_turns(start_server, echo_peer, tmp_path):
    server = start_server("--turn-secret", SECRET, *LOOPBACK, "--tls-self-signed", "--tls-listen", "127.0.0.1:0",
                          "--data", str(tmp_path / "data"))
    tls_port = int(wait_for_log(server, r"stun_tls_address=127\.0\.0\.1:(\d+)", timeout=30).group(1))
    ok, output = uclient(tls_port, "-S", "-t", "-W", SECRET, "-u", "alice", peer_port=echo_peer)
    assert ok, output
    assert "Total lost packets 0 (0.000000%)" in output
    # STUN in the clear on the TLS port is not a handshake: the connection is closed.
    with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as plain:
        plain.sendall(struct.pack("!HHI", 0x0001, 0, COOKIE) + os.urandom(12))
        received = b""
        while chunk := plain.recv(100):
            received += chunk
        assert not received.startswith(b"\x01\x01")  # a TLS alert at most, never a STUN answer
    turn = json.loads(curl(f"{server.url}/v1/rtc/ice-servers")[1])["iceServers"][1]
    assert turn["urls"][-1] == f"turns:127.0.0.1:{tls_port}?transport=tcp"


def test_turn_tls_listen_off(start_server, tmp_path):
    server = start_server("--turn-secret", SECRET, "--tls-self-signed", "--tls-listen", "127.0.0.1:0",
                          "--turn-tls-listen", "off", "--data", str(tmp_path / "data"))
    stun_port(server)
    assert "stun_tls_address" not in server.output()


def test_a_signed_binding_is_checked_and_answered_signed(start_server):
    server = start_server("--turn-secret", SECRET)
    port = stun_port(server)
    client = TurnClient(port)
    wrong = TurnClient(port, password="not-the-password")
    try:
        _, error, found, answer = client.ask(0x001, sign=False)
        assert error is None and 0x0008 not in found  # unsigned: answered, unsigned
        client.ask(ALLOCATE, sign=False)  # a challenge brings the realm's nonce
        _, error, found, answer = client.ask(0x001)
        assert error is None and verifies(answer, client.key)
        assert xor_address(found[0x0020]) == client.sock.getsockname()
        wrong.nonce = client.nonce
        _, error, found, _ = wrong.ask(0x001)
        assert error == 401 and found[0x0015]
    finally:
        client.close()
        wrong.close()


def test_datagrams_up_to_4k_cross_the_relay_whole_and_larger_ones_are_dropped(start_server):
    """Sockets read many datagrams a system call, each in a 4 KiB slot: nothing shorter is cut, and
    nothing that fills a slot is passed on cut short."""
    server = start_server("--turn-secret", SECRET, *LOOPBACK)
    client = TurnClient(stun_port(server))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(3)
    try:
        relay = client.allocate()
        _, error, _, _ = client.ask(CHANNEL_BIND, attribute(0x000C, struct.pack("!HH", 0x4009, 0))
                                    + xor_peer(*peer.getsockname()))
        assert error is None
        for size in (1, 1400, 3000, 4000):
            payload = os.urandom(size)
            client.sock.sendto(struct.pack("!HH", 0x4009, size) + payload, client.server)
            assert peer.recvfrom(8192) == (payload, relay)
            peer.sendto(payload, relay)
            assert client.sock.recv(8192) == struct.pack("!HH", 0x4009, size) + payload
        peer.sendto(os.urandom(5000), relay)
        client.sock.sendto(struct.pack("!HH", 0x4009, 5000) + os.urandom(5000), client.server)
        peer.sendto(b"after", relay)
        assert client.sock.recv(8192) == struct.pack("!HH", 0x4009, 5) + b"after"
        peer.settimeout(0.5)
        with pytest.raises(socket.timeout):
            peer.recvfrom(8192)
        assert metric_value(server, r'switchboard_turn_refused_total\{reason="oversized"\}') == 1
    finally:
        client.close()
        peer.close()
