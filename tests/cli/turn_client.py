"""A TURN client over a raw UDP socket for the tests: requests signed with long-term credentials, and
the attribute encodings they need."""
import base64
import hashlib
import hmac
import os
import socket
import struct
import time
import zlib

COOKIE = 0x2112A442
SECRET = "north"
ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 0x003, 0x004, 0x006, 0x007, 0x008, 0x009


def attributes_of(message):
    """{type: value} of a STUN message's attributes."""
    found, offset = {}, 20
    while offset < len(message):
        kind, length = struct.unpack_from("!HH", message, offset)
        found[kind] = message[offset + 4:offset + 4 + length]
        offset += 4 + (length + 3) // 4 * 4
    return found


class TurnClient:
    """A TURN client over a raw UDP socket, signing with the long-term key."""

    def __init__(self, port, username="alice", password=None, secret=SECRET, realm="switchboard", host="127.0.0.1"):
        self.server = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if host == "127.0.0.1" else "0.0.0.0", 0))
        self.sock.settimeout(3)
        if password is None:
            username = f"{int(time.time()) + 3600}:{username}"
            password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
        self.username, self.realm = username, realm
        self.key = hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()
        self.nonce = None

    def close(self):
        self.sock.close()

    def message(self, method, attributes=b"", cls=0x0000, transaction=None, sign=True):
        transaction = transaction or os.urandom(12)
        kind = method | cls
        if sign:
            attributes += attribute(0x0006, self.username.encode()) + attribute(0x0014, self.realm.encode())
            attributes += attribute(0x0015, self.nonce.encode())
            header = struct.pack("!HHI", kind, len(attributes) + 24, COOKIE) + transaction
            attributes += attribute(0x0008, hmac.new(self.key, header + attributes, hashlib.sha1).digest())
        body = struct.pack("!HHI", kind, len(attributes) + 8, COOKIE) + transaction + attributes
        return body + struct.pack("!HHI", 0x8028, 4, (zlib.crc32(body) ^ 0x5354554E) & 0xFFFFFFFF)

    def ask(self, method, attributes=b"", transaction=None, sign=True):
        """Sends a request and returns (class bits, error code or None, attributes, raw answer); learns the
        nonce from a 401 and asks again."""
        if sign and self.nonce is None:
            self.ask(method, attributes, sign=False)
        self.sock.sendto(self.message(method, attributes, transaction=transaction, sign=sign), self.server)
        answer = self.sock.recv(4096)
        found = attributes_of(answer)
        if 0x0015 in found:
            self.nonce = found[0x0015].decode()
        error = None
        if 0x0009 in found:
            error = found[0x0009][2] * 100 + found[0x0009][3]
        return struct.unpack_from("!H", answer)[0] & 0x0110, error, found, answer

    def allocate(self, extra=b""):
        cls, error, found, _ = self.ask(ALLOCATE, attribute(0x0019, bytes([17, 0, 0, 0])) + extra)
        assert error is None, (error, found)
        return xor_address(found[0x0016])


def attribute(kind, value):
    return struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)


def xor_address(value):
    port = struct.unpack_from("!H", value, 2)[0] ^ (COOKIE >> 16)
    address = struct.unpack_from("!I", value, 4)[0] ^ COOKIE
    return socket.inet_ntoa(struct.pack("!I", address)), port


def xor_peer(host, port):
    address = struct.unpack("!I", socket.inet_aton(host))[0] ^ COOKIE
    return attribute(0x0012, struct.pack("!BBHI", 0, 1, port ^ (COOKIE >> 16), address))


def verifies(answer, key):
    """Whether a signed answer's MESSAGE-INTEGRITY verifies under `key`."""
    offset = 20
    while offset < len(answer):
        kind, length = struct.unpack_from("!HH", answer, offset)
        if kind == 0x0008:
            header = bytearray(answer[:offset])
            struct.pack_into("!H", header, 2, offset + 24 - 20)
            return hmac.compare_digest(hmac.new(key, bytes(header), hashlib.sha1).digest(),
                                       answer[offset + 4:offset + 24])
        offset += 4 + (length + 3) // 4 * 4
    return False


