"""WebRTC signaling rooms over WebSocket (Python `websockets`) and `/v1/rtc/ice-servers`, whose TURN
credentials coturn's own client then allocates with."""
import base64
import hashlib
import hmac
import json
import socket
import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import curl
from test_turn import SECRET, stun_port, uclient

JWT_SECRET = "a-secret-of-at-least-thirty-two-bytes!!"


def ws_url(server, room, peer=None, token=None):
    url = server.url.replace("http", "ws") + f"/v1/rtc/rooms/{room}"
    query = [f"peer={peer}"] if peer else []
    query += [f"access_token={token}"] if token else []
    return url + ("?" + "&".join(query) if query else "")


def receive(socket):
    return json.loads(socket.recv(timeout=5))


def test_peers_join_signal_each_other_and_leave(start_server):
    server = start_server()
    with connect(ws_url(server, "call-1", "alice")) as alice:
        assert receive(alice) == {"type": "welcome", "room": "call-1", "peer": "alice", "peers": []}
        with connect(ws_url(server, "call-1", "bob")) as bob:
            assert receive(bob) == {"type": "welcome", "room": "call-1", "peer": "bob", "peers": ["alice"]}
            assert receive(alice) == {"type": "joined", "peer": "bob"}
            offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
            alice.send(json.dumps({"op": "signal", "to": "bob", "data": offer}))
            assert receive(bob) == {"type": "signal", "from": "alice", "data": offer}
            candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ relay", "sdpMid": "0"}
            bob.send(json.dumps({"op": "signal", "data": candidate}))  # to everyone else
            assert receive(alice) == {"type": "signal", "from": "bob", "data": candidate}
            # Mistakes are error frames; the socket stays.
            for message, code in ((json.dumps({"op": "signal", "to": "carol", "data": {}}), "peer_not_found"),
                                  (json.dumps({"op": "signal", "to": "bob"}), "invalid_message"),
                                  ("not json", "invalid_json"), (json.dumps({"op": "dance"}), "unknown_op")):
                bob.send(message)
                error = receive(bob)
                assert error["type"] == "error" and error["code"] == code, error
            bob.send(b"\x00binary")
            assert receive(bob)["code"] == "binary_not_supported"
            bob.send(json.dumps({"op": "ping"}))
            assert receive(bob) == {"type": "pong"}
            assert "switchboard_rtc_peers 2.0" in curl(f"{server.url}/metrics")[1]
        assert receive(alice) == {"type": "left", "peer": "bob"}
    time.sleep(0.2)
    metrics = curl(f"{server.url}/metrics")[1]
    assert "switchboard_rtc_peers 0.0" in metrics and "switchboard_rtc_rooms 0.0" in metrics


def test_a_peer_without_an_id_gets_one_and_rooms_are_apart(start_server):
    server = start_server()
    with connect(ws_url(server, "a")) as first, connect(ws_url(server, "b")) as second:
        one, two = receive(first), receive(second)
        assert len(one["peer"]) == 36 and one["peers"] == [] and two["peers"] == []


def test_a_full_room_and_a_taken_id_are_refused_with_an_error_and_a_close(start_server):
    server = start_server("--rtc-max-peers", "2")
    with connect(ws_url(server, "small", "a")) as a, connect(ws_url(server, "small", "b")) as b:
        receive(a), receive(b)
        for peer, code in (("c", "room_full"), ("a", "peer_id_taken")):
            with connect(ws_url(server, "small", peer)) as refused:
                error = receive(refused)
                assert error["code"] == code and error["status"] == 409
                with pytest.raises(ConnectionClosed) as closed:
                    refused.recv(timeout=5)
                assert closed.value.rcvd.code == 1008
        assert receive(a) == {"type": "joined", "peer": "b"}  # nobody else joined
        assert "switchboard_rtc_peers 2.0" in curl(f"{server.url}/metrics")[1]


def test_room_requests_that_are_not_upgrades_say_why(start_server):
    server = start_server()
    assert curl(f"{server.url}/v1/rtc/rooms/lobby")[0] == 426
    status, body = curl(f"{server.url}/v1/rtc/rooms/bad%20room")
    assert status == 400 and "room_name_invalid" in body
    status, body = curl(f"{server.url}/v1/rtc/rooms/lobby?peer=" + "x" * 65)
    assert status == 400 and "peer_id_invalid" in body


def test_tokens_decide_which_rooms_a_peer_may_join(start_server):
    server = start_server("--jwt-secret", JWT_SECRET)
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60, "rooms": ["team.*"]}, JWT_SECRET,
                       algorithm="HS256")
    with connect(ws_url(server, "team.blue", "alice", token)) as alice:
        assert receive(alice)["type"] == "welcome"
    with pytest.raises(Exception, match="403"):
        connect(ws_url(server, "other", "alice", token))
    with pytest.raises(Exception, match="401"):
        connect(ws_url(server, "team.blue", "alice"))
    assert curl("-H", f"Authorization: Bearer {token}", f"{server.url}/v1/rtc/rooms/other")[0] == 403


def test_ice_servers_hand_out_turn_credentials_that_allocate(start_server):
    server = start_server("--turn-secret", SECRET, "--turn-credential-ttl", "10m", "--turn-allowed-peers",
                          "127.0.0.0/8")
    port = stun_port(server)
    status, body = curl(f"{server.url}/v1/rtc/ice-servers")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["ttl"] == 600
    stun, turn = answer["iceServers"]
    assert stun == {"urls": [f"stun:127.0.0.1:{port}"]}
    assert turn["urls"] == [f"turn:127.0.0.1:{port}?transport=udp", f"turn:127.0.0.1:{port}?transport=tcp"]
    expiry, user = turn["username"].split(":", 1)
    assert user == "anonymous" and 590 <= int(expiry) - time.time() <= 610
    expected = base64.b64encode(hmac.new(SECRET.encode(), turn["username"].encode(), hashlib.sha1).digest())
    assert turn["credential"] == expected.decode()
    ok, output = uclient(port, "-y", "-u", turn["username"], "-w", turn["credential"], messages=5)
    assert ok, output


def test_ice_servers_without_turn_list_stun_only_and_nothing_when_off(start_server):
    server = start_server()
    port = stun_port(server)
    assert json.loads(curl(f"{server.url}/v1/rtc/ice-servers")[1])["iceServers"] == [
        {"urls": [f"stun:127.0.0.1:{port}"]}]
    off = start_server("--stun-listen", "off")
    assert json.loads(curl(f"{off.url}/v1/rtc/ice-servers")[1])["iceServers"] == []


def test_ice_servers_name_the_token_subject(start_server):
    server = start_server("--turn-secret", SECRET, "--jwt-secret", JWT_SECRET)
    stun_port(server)
    token = jwt.encode({"sub": "carol", "exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")
    assert curl(f"{server.url}/v1/rtc/ice-servers")[0] == 401
    status, body = curl("-H", f"Authorization: Bearer {token}", f"{server.url}/v1/rtc/ice-servers")
    assert status == 200 and json.loads(body)["iceServers"][1]["username"].endswith(":carol")


def test_a_vanished_peer_is_pinged_then_closed_and_leaves_the_room(start_server):
    server = start_server("--idle-timeout", "1s")
    with connect(ws_url(server, "idle", "alive")) as alive:  # websockets answers pings by itself
        receive(alive)
        # A peer that completes the handshake and then says nothing, not even pong.
        ghost = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        ghost.sendall(b"GET /v1/rtc/rooms/idle?peer=ghost HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n")
        started = time.monotonic()
        assert ghost.recv(4096).startswith(b"HTTP/1.1 101")
        assert receive(alive) == {"type": "joined", "peer": "ghost"}
        assert json.loads(alive.recv(timeout=10)) == {"type": "left", "peer": "ghost"}
        assert 1.5 <= time.monotonic() - started <= 6
        received = b""
        while chunk := ghost.recv(4096):
            received += chunk
        assert b"\x89\x00" in received  # the ping it did not answer
        ghost.close()
        # The peer that answers pings stays.
        time.sleep(2.5)
        alive.send(json.dumps({"op": "ping"}))
        assert receive(alive) == {"type": "pong"}
