"""Stateless JWT authentication with tokens made by PyJWT (HS256, RS256, ES256) and `switchboard token`:
forged, expired, `alg: none` and algorithm-confused tokens, claims per route and transport."""
import asyncio
import base64
import json
import os
import subprocess
import time

import jwt
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import BINARY, curl, wait_for_log

SECRET = "a-development-secret-of-32-bytes!"


def token(claims=None, key=SECRET, algorithm="HS256", ttl=3600, **headers):
    body = {"sub": "tester", "exp": int(time.time()) + ttl, **(claims or {})}
    return jwt.encode(body, key, algorithm=algorithm, headers=headers or None)


def bearer(value):
    return ("-H", f"Authorization: Bearer {value}")


def error_code(result):
    status, body = result
    return status, json.loads(body)["error"]["code"] if body.startswith("{") else body


def test_every_route_needs_a_valid_token_but_the_probes(start_server):
    server = start_server("--jwt-secret", SECRET)
    url = f"{server.url}/v1/topics/chat.a/messages"
    assert curl(f"{server.url}/healthz")[0] == 200 and curl(f"{server.url}/metrics")[0] == 200
    assert error_code(curl("-X", "POST", "-d", "x", url)) == (401, "unauthorized")
    good = token({"publish": ["chat.*"], "subscribe": ["chat.*"]})
    assert curl("-X", "POST", "-d", "x", *bearer(good), url)[0] == 201
    assert curl(*bearer(good), url + "?after=0")[0] == 200
    forged = token({"admin": True}, key="another-secret-of-at-least-32-bytes")
    expired = token({"admin": True}, ttl=-60)
    early = token({"admin": True, "nbf": int(time.time()) + 3600})
    unsigned = jwt.encode({"sub": "x", "exp": int(time.time()) + 60, "admin": True}, None, algorithm="none")
    for bad in (forged, expired, early, unsigned, "not.a.jwt", good[:-4] + "AAAA"):
        assert error_code(curl(*bearer(bad), url + "?after=0")) == (401, "unauthorized"), bad
    assert error_code(curl("-X", "POST", "-d", "x", *bearer(good), f"{server.url}/v1/topics/other/messages")) \
        == (403, "forbidden")
    assert error_code(curl(*bearer(good), f"{server.url}/v1/topics/other/messages")) == (403, "forbidden")
    # The token in the query string is never written to the log.
    curl(f"{url}?after=0&access_token={good}")
    wait_for_log(server, "access_token=REDACTED")
    assert good not in server.output()


def test_rs256_and_es256_public_keys_and_algorithm_confusion(start_server, tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "rsa.pem").write_bytes(public_pem)
    server = start_server("--jwt-public-key", str(tmp_path / "rsa.pem"))
    url = f"{server.url}/v1/topics/t/messages?after=0"
    assert curl(*bearer(token({"subscribe": ["t"]}, key=rsa_key, algorithm="RS256")), url)[0] == 200
    # HS256 signed with the public key's bytes as the secret: the classic confusion attack.
    confused = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode() + "." + \
        base64.urlsafe_b64encode(json.dumps({"sub": "x", "exp": int(time.time()) + 60, "admin": True}).encode()) \
        .rstrip(b"=").decode()
    import hmac, hashlib
    signature = hmac.new(public_pem, confused.encode(), hashlib.sha256).digest()
    confused += "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    assert error_code(curl(*bearer(confused), url)) == (401, "unauthorized")

    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ec_server = start_server("--jwt-public-key", str(tmp_path / "ec.pem"), "--jwt-issuer", "https://issuer.test",
                             "--jwt-audience", "switchboard")
    ec_url = f"{ec_server.url}/v1/topics/t/messages?after=0"
    claims = {"subscribe": ["*"], "iss": "https://issuer.test", "aud": "switchboard"}
    assert curl(*bearer(token(claims, key=ec_key, algorithm="ES256")), ec_url)[0] == 200
    assert curl(*bearer(token({**claims, "aud": "elsewhere"}, key=ec_key, algorithm="ES256")), ec_url)[0] == 401
    assert curl(*bearer(token({**claims, "iss": "https://evil.test"}, key=ec_key, algorithm="ES256")), ec_url)[0] == 401


def test_jwks_keys_are_chosen_by_kid(start_server, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "ES256", "use": "sig"}]}))
    server = start_server("--jwks", str(tmp_path / "jwks.json"))
    url = f"{server.url}/v1/topics/t/messages?after=0"
    assert curl(*bearer(token({"subscribe": ["t"]}, key=key, algorithm="ES256", kid="k1")), url)[0] == 200
    other = ec.generate_private_key(ec.SECP256R1())
    assert curl(*bearer(token({"subscribe": ["t"]}, key=other, algorithm="ES256", kid="k1")), url)[0] == 401


def test_queue_claims_guard_jobs_and_keys_belong_to_their_subject(start_server):
    server = start_server("--jwt-secret", SECRET)
    mail = token({"sub": "mailer", "queues": ["mail"]})
    other = token({"sub": "other", "queues": ["mail"]})
    status, body = curl("-X", "POST", *bearer(mail), "-H", "Idempotency-Key: k", "--data-binary",
                        '{"queue":"mail","type":"send"}', f"{server.url}/v1/jobs")
    assert status == 202
    job = json.loads(body)
    assert error_code(curl("-X", "POST", *bearer(mail), "--data-binary", '{"queue":"billing","type":"x"}',
                           f"{server.url}/v1/jobs")) == (403, "forbidden")
    assert curl(*bearer(mail), f"{server.url}/v1/jobs/{job['id']}")[0] == 200
    assert curl(*bearer(token({"queues": ["billing"]})), f"{server.url}/v1/jobs/{job['id']}")[0] == 403
    assert curl(*bearer(mail), f"{server.url}/v1/jobs")[0] == 403  # every queue needs "*"
    assert curl(*bearer(token({"admin": True})), f"{server.url}/v1/jobs")[0] == 200
    assert curl("-X", "POST", *bearer(mail), f"{server.url}/v1/queues/mail/claim")[0] == 200
    # The same Idempotency-Key from another subject is another key.
    status, again = curl("-X", "POST", *bearer(other), "-H", "Idempotency-Key: k", "--data-binary",
                         '{"queue":"mail","type":"send"}', f"{server.url}/v1/jobs")
    assert status == 202 and json.loads(again)["id"] != job["id"]


def test_websocket_needs_a_token_obeys_its_claims_and_closes_when_it_expires(start_server):
    server = start_server("--jwt-secret", SECRET)
    ws_url = f"ws://127.0.0.1:{server.port}/v1/ws"

    async def session():
        try:
            async with websockets.connect(ws_url):
                raise AssertionError("upgraded without a token")
        except websockets.exceptions.InvalidStatus as refused:
            assert refused.response.status_code == 401
        short = token({"subscribe": ["chat.*"]}, ttl=2)
        async with websockets.connect(f"{ws_url}?access_token={short}") as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": "chat.x"}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await ws.send(json.dumps({"op": "subscribe", "topic": "secret", "ref": "r"}))
            assert json.loads(await ws.recv())["code"] == "forbidden"
            await ws.send(json.dumps({"op": "publish", "topic": "chat.x", "data": "no", "ref": "p"}))
            assert json.loads(await ws.recv())["code"] == "forbidden"
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["code"] == "token_expired"
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.exceptions.ConnectionClosed as closed:
                assert closed.rcvd.code == 1008

    asyncio.run(session())


def test_sse_stream_ends_when_its_token_expires(start_server):
    server = start_server("--jwt-secret", SECRET)
    short = token({"subscribe": ["news"]}, ttl=2)
    started = time.monotonic()
    result = subprocess.run(["curl", "-sN", "--max-time", "15", f"{server.url}/v1/topics/news/events?access_token={short}"],
                            capture_output=True, text=True)
    assert time.monotonic() - started < 10
    assert "event: token_expired" in result.stdout


def test_cli_mints_tokens_from_the_secret(start_server):
    server = start_server("--jwt-secret", SECRET)
    minted = subprocess.run([str(BINARY), "token", "--secret", SECRET, "--sub", "cli", "--publish", "chat.*",
                             "--ttl", "10m"], capture_output=True, text=True, check=True).stdout.strip()
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "cli" and claims["publish"] == ["chat.*"] and claims["exp"] > time.time() + 500
    assert curl("-X", "POST", "-d", "x", *bearer(minted), f"{server.url}/v1/topics/chat.cli/messages")[0] == 201
    short = subprocess.run([str(BINARY), "token", "--secret", "short"], capture_output=True, text=True)
    assert short.returncode != 0
    bad = subprocess.run([str(BINARY), "serve", "--jwt-secret", "short"], capture_output=True, text=True)
    assert bad.returncode == 2 and "jwt-secret" in bad.stderr
