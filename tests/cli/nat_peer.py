"""One side of a NAT lab experiment, run in a client namespace (test_nat_lab.py). Prints JSON lines.

  stun HOST PORT   the address the STUN server at HOST:PORT sees this socket at
  punch HOST PORT  learns its mapped address by STUN, prints it, reads the other side's from stdin, then for
                   three seconds sends to it and counts what arrives (UDP hole punching)
  relay HOST PORT  allocates a TURN relay, prints it, reads the other side's from stdin, permits it, then for
                   three seconds sends to it through the relay and counts Data indications
"""
import json
import select
import socket
import struct
import sys
import time

from turn_client import ALLOCATE, CREATE_PERMISSION, SEND, TurnClient, attribute, attributes_of, xor_address, \
    xor_peer


def say(**fields):
    print(json.dumps(fields), flush=True)


def mapped(sock, server):
    client = TurnClient(server[1], host=server[0])
    client.sock.close()
    client.sock = sock
    _, _, found, _ = client.ask(0x001, sign=False)
    return xor_address(found[0x0020])


def exchange(send, receive, seconds=3.0):
    """Sends every 100 ms for `seconds` and counts what `receive` accepts."""
    received, deadline, next_send = 0, time.monotonic() + seconds, 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_send:
            send()
            next_send = time.monotonic() + 0.1
        if receive(0.05):
            received += 1
    return received


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server = (host, port)
    if mode == "stun":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(3)
        say(mapped=mapped(sock, server), local=sock.getsockname()[0])
    elif mode == "punch":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(3)
        say(mapped=mapped(sock, server))
        other = tuple(json.loads(sys.stdin.readline()))

        def receive(timeout):
            ready, _, _ = select.select([sock], [], [], timeout)
            return bool(ready) and sock.recvfrom(2048)[0] == b"punch"

        say(received=exchange(lambda: sock.sendto(b"punch", other), receive))
    else:
        client = TurnClient(port, username=f"lab-{socket.gethostname()}", host=host)
        _, error, found, _ = client.ask(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])))
        assert error is None, error
        say(relay=xor_address(found[0x0016]))
        other = tuple(json.loads(sys.stdin.readline()))
        _, error, _, _ = client.ask(CREATE_PERMISSION, xor_peer(*other))
        assert error is None, error
        indication = lambda: client.message(SEND, xor_peer(*other) + attribute(0x0013, b"through the relay"),
                                            cls=0x0010, sign=False)

        def receive(timeout):
            ready, _, _ = select.select([client.sock], [], [], timeout)
            if not ready:
                return False
            answer = client.sock.recv(4096)
            return struct.unpack_from("!H", answer)[0] == 0x0017 and \
                attributes_of(answer).get(0x0013) == b"through the relay"

        say(received=exchange(lambda: client.sock.sendto(indication(), client.server), receive))


main()
