"""Resumable uploads (tus 1.0) with the official Python client tuspy, curl, raw sockets and the CLI."""
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import time

from tusclient import client as tus

from conftest import BINARY, curl, free_port

TUS = ("-H", "Tus-Resumable: 1.0.0")


def make_file(path, megabytes):
    with open(path, "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_sha256(server, location):
    result = subprocess.run(["curl", "-sf", f"{server.url}{location}/content"], capture_output=True, check=True)
    return hashlib.sha256(result.stdout).hexdigest()


def read_progress_until(upload, done):
    """Reads the progress lines of a running `switchboard upload` until `done` bytes are reported."""
    for line in upload.stdout:
        if line.startswith("uploaded ") and int(line.split()[1]) >= done:
            return


def first_progress(output):
    """The byte count of the first progress line: where an upload started or resumed."""
    return int(next(line for line in output.splitlines() if line.startswith("uploaded ")).split()[1])


def path_of(url):
    return "/v1/uploads/" + url.rstrip("/").rsplit("/", 1)[1]


def head(server, location):
    result = subprocess.run(["curl", "-s", "-I", *TUS, f"{server.url}{location}"], capture_output=True, text=True)
    lines = result.stdout.splitlines()
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)}
    return int(lines[0].split()[1]), headers


def create(server, *headers):
    status, body = curl("-i", "-X", "POST", *TUS, *headers, f"{server.url}/v1/uploads")
    assert status == 201, body
    return [line.split(" ", 1)[1].strip() for line in body.splitlines() if line.lower().startswith("location:")][0]


def patch(server, location, data, offset, *headers):
    result = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "PATCH", *TUS,
         "-H", "Content-Type: application/offset+octet-stream", "-H", f"Upload-Offset: {offset}", *headers,
         "--data-binary", "@-", f"{server.url}{location}"],
        input=data, capture_output=True, check=True,
    )
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), json.loads(body) if body else None


def test_tuspy_uploads_50_mb_in_1_mb_chunks_and_the_download_matches(start_server, tmp_path):
    server = start_server()
    digest = make_file(tmp_path / "big.bin", 50)
    uploader = tus.TusClient(f"{server.url}/v1/uploads").uploader(
        str(tmp_path / "big.bin"), chunk_size=1 << 20, metadata={"filename": "big.bin", "job": "sha256"})
    uploader.upload()
    location = path_of(uploader.url)
    status, headers = head(server, location)
    assert status == 200 and headers["upload-offset"] == headers["upload-length"] == str(50 << 20)
    assert download_sha256(server, location) == digest
    announced = json.loads(curl(f"{server.url}/v1/topics/uploads/messages?after=0")[1])["messages"]
    event = json.loads(announced[0]["data"])
    assert event["id"] == location.rsplit("/", 1)[1] and event["metadata"]["filename"] == "big.bin"
    job = json.loads(curl(f"{server.url}/v1/jobs/{event['job']}?wait=10")[1])
    while job["state"] != "succeeded":
        job = json.loads(curl(f"{server.url}/v1/jobs/{event['job']}?wait=5&version={job['version']}")[1])
    assert job["result"] == {"sha256": digest, "bytes": 50 << 20}


def test_killed_cli_upload_resumes_where_the_server_says(start_server, tmp_path):
    server = start_server()
    digest = make_file(tmp_path / "video.bin", 40)
    environment = {**os.environ, "SWITCHBOARD_URL": server.url, "HOME": str(tmp_path)}
    first = subprocess.Popen([str(BINARY), "upload", str(tmp_path / "video.bin"), "--chunk-size", "1MiB"],
                             stdout=subprocess.PIPE, text=True, env=environment)
    read_progress_until(first, 10 << 20)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.run([str(BINARY), "upload", str(tmp_path / "video.bin"), "--chunk-size", "1MiB"],
                            capture_output=True, text=True, env=environment, timeout=120)
    assert second.returncode == 0, second.stderr
    assert first_progress(second.stdout) >= 4 << 20  # resumed, not restarted
    url = second.stdout.splitlines()[-1]
    assert download_sha256(server, path_of(url)) == digest
    # Once finished it is forgotten: a third run uploads afresh.
    third = subprocess.run([str(BINARY), "upload", str(tmp_path / "video.bin")], capture_output=True, text=True,
                           env=environment, timeout=120)
    assert third.stdout.splitlines()[-1] != url


def test_upload_resumes_after_the_server_restarts(start_server, tmp_path):
    port = free_port()
    data = tmp_path / "data"
    server = start_server("--data", str(data), port=port)
    digest = make_file(tmp_path / "doc.bin", 20)
    uploader = tus.TusClient(f"{server.url}/v1/uploads").uploader(str(tmp_path / "doc.bin"), chunk_size=1 << 20)
    uploader.upload(stop_at=8 << 20)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    restarted = start_server("--data", str(data), port=port)
    status, headers = head(restarted, path_of(uploader.url))
    assert status == 200 and int(headers["upload-offset"]) >= 8 << 20
    resumed = tus.TusClient(f"{restarted.url}/v1/uploads").uploader(
        str(tmp_path / "doc.bin"), chunk_size=1 << 20, url=uploader.url)
    resumed.upload()
    assert download_sha256(restarted, path_of(uploader.url)) == digest


def test_cli_upload_resumes_after_the_server_restarts(start_server, tmp_path):
    port = free_port()
    data = tmp_path / "data"
    server = start_server("--data", str(data), port=port)
    digest = make_file(tmp_path / "archive.bin", 40)
    environment = {**os.environ, "SWITCHBOARD_URL": server.url, "HOME": str(tmp_path)}
    command = [str(BINARY), "upload", str(tmp_path / "archive.bin"), "--chunk-size", "1MiB"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    read_progress_until(first, 10 << 20)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    _, errors = first.communicate(timeout=60)
    assert first.returncode == 1 and errors.startswith("switchboard:")
    restarted = start_server("--data", str(data), port=port)
    second = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    assert second.returncode == 0, second.stderr
    assert first_progress(second.stdout) >= 4 << 20
    assert download_sha256(restarted, path_of(second.stdout.splitlines()[-1])) == digest


def test_a_patch_cut_off_midway_keeps_the_bytes_that_arrived(start_server):
    server = start_server()
    location = create(server, "-H", "Upload-Length: 1000000")
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall((f"PATCH {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                     "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                     "Content-Length: 1000000\r\n\r\n").encode() + b"x" * 300000)
        time.sleep(0.5)
    deadline = time.monotonic() + 5
    while head(server, location)[1]["upload-offset"] != "300000":
        assert time.monotonic() < deadline, head(server, location)
        time.sleep(0.1)
    assert patch(server, location, b"y" * 700000, 300000)[0] == 204
    result = subprocess.run(["curl", "-sf", f"{server.url}{location}/content"], capture_output=True, check=True)
    assert result.stdout == b"x" * 300000 + b"y" * 700000


def test_a_second_patch_while_one_runs_is_refused(start_server):
    server = start_server()
    location = create(server, "-H", "Upload-Length: 1000")
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall((f"PATCH {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                     "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                     "Content-Length: 1000\r\n\r\n").encode() + b"a" * 100)
        time.sleep(0.3)
        status, body = patch(server, location, b"b" * 100, 0)
        assert status == 423 and body["error"]["code"] == "upload_locked"
        raw.sendall(b"a" * 900)
        assert b"204" in raw.recv(4096).split(b"\r\n")[0]
    assert head(server, location)[1]["upload-offset"] == "1000"


def test_a_download_never_runs_as_a_page_of_the_api(start_server):
    # The uploader names the file's type; the server sends it only when it is a media type, forbids sniffing,
    # and sandboxes the document, so an uploaded "text/html" cannot run script in the API's origin.
    server = start_server()
    for filetype, expected in ((b"text/html", "text/html"), (b"text/html; charset=x\r\nX-Evil: 1", None),
                               (b"nonsense", None)):
        location = create(server, "-H", "Upload-Length: 5",
                          "-H", f"Upload-Metadata: filetype {base64.b64encode(filetype).decode()}")
        assert patch(server, location, b"<b>x", 0)[0] == 204 and patch(server, location, b"!", 4)[0] == 204
        result = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", f"{server.url}{location}/content"],
                                capture_output=True, text=True, check=True)
        headers = {name.lower(): value.strip() for name, _, value in
                   (line.partition(":") for line in result.stdout.splitlines()[1:] if ":" in line)}
        assert headers["content-type"] == (expected or "application/octet-stream")
        assert headers["x-content-type-options"] == "nosniff" and headers["content-security-policy"] == "sandbox"
        assert "x-evil" not in headers


def test_protocol_errors_get_the_tus_status_codes(start_server):
    server = start_server("--upload-max-size", "1MiB")
    status, body = curl("-X", "POST", "-H", "Upload-Length: 10", f"{server.url}/v1/uploads")
    assert status == 412 and json.loads(body)["error"]["code"] == "tus_version_unsupported"
    status, _ = curl("-X", "POST", *TUS, "-H", f"Upload-Length: {2 << 20}", f"{server.url}/v1/uploads")
    assert status == 413
    status, _ = curl("-X", "POST", *TUS, f"{server.url}/v1/uploads")
    assert status == 400
    location = create(server, "-H", "Upload-Length: 10",
                      "-H", f"Upload-Metadata: filename {base64.b64encode(b'a.txt').decode()},filetype dGV4dC9wbGFpbg==")
    status, body = curl("-X", "PATCH", *TUS, "-H", "Upload-Offset: 0", "-H", "Content-Type: text/plain",
                        "--data-binary", "0123456789", f"{server.url}{location}")
    assert status == 415
    assert patch(server, location, b"01234", 3)[0] == 409
    assert patch(server, location, b"01234", 0)[0] == 204
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    status, body = patch(server, location, b"56789", 5, "-H", f"Upload-Checksum: sha1 {wrong}")
    assert status == 460 and body["error"]["code"] == "checksum_mismatch"
    assert head(server, location)[1]["upload-offset"] == "5"  # the chunk was discarded
    assert patch(server, location, b"5678", 5, "-H", "Upload-Checksum: crc32 AAAA")[0] == 400
    right = base64.b64encode(hashlib.sha256(b"56789").digest()).decode()
    assert patch(server, location, b"56789", 5, "-H", f"Upload-Checksum: sha256 {right}")[0] == 204
    assert patch(server, location, b"more", 10)[0] == 413
    status, body = curl("-H", "Range: bytes=2-4", f"{server.url}{location}/content")
    assert (status, body) == (206, "234")
    assert curl("-H", "Range: bytes=20-", f"{server.url}{location}/content")[0] == 416
    # The largest last byte a client can name is the end of the file, not an overflow.
    status, body = curl("-H", "Range: bytes=7-9223372036854775807", f"{server.url}{location}/content")
    assert (status, body) == (206, "789")
    assert curl("-X", "DELETE", *TUS, f"{server.url}{location}")[0] == 204
    assert head(server, location)[0] == 404
    assert curl("-X", "DELETE", *TUS, f"{server.url}{location}")[0] == 404
    assert curl("-X", "OPTIONS", f"{server.url}/v1/uploads")[0] == 204


def test_deferred_length_concatenation_and_expiry(start_server):
    server = start_server("--upload-expiry", "1s")
    deferred = create(server, "-H", "Upload-Defer-Length: 1")
    assert head(server, deferred)[1]["upload-defer-length"] == "1"
    assert patch(server, deferred, b"abc", 0, "-H", "Upload-Length: 6")[0] == 204
    assert patch(server, deferred, b"def", 3)[0] == 204
    assert curl(f"{server.url}{deferred}/content")[1] == "abcdef"

    first = create(server, "-H", "Upload-Length: 3", "-H", "Upload-Concat: partial")
    second = create(server, "-H", "Upload-Length: 3", "-H", "Upload-Concat: partial")
    assert patch(server, first, b"123", 0)[0] == 204
    status, body = curl("-X", "POST", *TUS, "-H", f"Upload-Concat: final;{first} {second}", f"{server.url}/v1/uploads")
    assert status == 400  # a part is not finished
    assert patch(server, second, b"456", 0)[0] == 204
    final = create(server, "-H", f"Upload-Concat: final;{server.url}{first} {second}")
    status, headers = head(server, final)
    assert headers["upload-concat"] == f"final;{first} {second}" and headers["upload-offset"] == "6"
    assert curl(f"{server.url}{final}/content")[1] == "123456"
    assert patch(server, final, b"x", 6)[0] == 403

    stale = create(server, "-H", "Upload-Length: 10")
    time.sleep(1.5)
    assert head(server, stale)[0] == 410
    assert patch(server, stale, b"x", 0)[0] == 410


def test_idempotency_key_on_upload_creation(start_server):
    server = start_server()
    first = curl("-i", "-X", "POST", *TUS, "-H", "Upload-Length: 5", "-H", "Idempotency-Key: up-1",
                 f"{server.url}/v1/uploads")[1]
    again = curl("-i", "-X", "POST", *TUS, "-H", "Upload-Length: 5", "-H", "Idempotency-Key: up-1",
                 f"{server.url}/v1/uploads")[1]
    location = [line for line in first.splitlines() if line.lower().startswith("location")]
    assert location and location == [line for line in again.splitlines() if line.lower().startswith("location")]
    assert "Idempotent-Replayed: true" in again
    status, body = curl("-X", "POST", *TUS, "-H", "Upload-Length: 6", "-H", "Idempotency-Key: up-1",
                        f"{server.url}/v1/uploads")
    assert status == 422
