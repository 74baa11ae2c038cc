"""Upstreams and an edge process for the edge tests: small HTTP and TCP servers on loopback that record what
reaches them, and `switchboard edge` started on a config written by the test."""
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import BINARY


class Upstream:
    """An HTTP/1.1 server in a thread that answers JSON naming itself and the request it saw, and streams
    `/sse` as three events half a second apart. `requests` lists the paths it was asked for."""

    def __init__(self, name, port=0):
        self.name = name
        self.requests = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                upstream.requests.append(self.path)
                if self.path.startswith("/sse"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for index in range(3):
                        self.wfile.write(f"data: tick {index}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(0.5)
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.dumps({"upstream": upstream.name, "path": self.path, "headers": dict(self.headers),
                                   "body": self.rfile.read(length).decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET
            do_PUT = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Edge:
    """`switchboard edge` on a config written to `directory`; `ports` maps listener names to bound ports."""

    def __init__(self, config, directory):
        self.config_path = Path(directory) / "edge.yaml"
        self.log_path = Path(directory) / "edge.log"
        self.write(config)
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([str(BINARY), "edge", "--config", str(self.config_path)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        names = [listener["name"] for listener in config["listeners"]] + (["admin"] if "admin" in config else [])
        self.ports = {}
        deadline = time.monotonic() + 30
        while set(self.ports) != set(names):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(self.output())
            for match in re.finditer(r"address=\S+:(\d+) listener=(\S+) .*Edge listening", self.output()):
                self.ports[match.group(2)] = int(match.group(1))
            time.sleep(0.05)

    def write(self, config):
        # JSON is YAML too: the file the edge reads is the one a user would write, in flow style.
        self.config_path.write_text(json.dumps(config, indent=2))

    def url(self, listener):
        return f"http://127.0.0.1:{self.ports[listener]}"

    def output(self):
        return self.log_path.read_text()

    def metrics(self):
        return subprocess.run(["curl", "-s", f"{self.url('admin')}/metrics"], capture_output=True, text=True).stdout

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=20)
        self.log.close()
        return code


def http_get(url, headers=None, timeout=10):
    """(status, parsed JSON or text) of a GET, without a proxy."""
    import urllib.error
    import urllib.request
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read().decode(), error.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def raw_exchange(port, payload, timeout=3):
    """Sends bytes on a fresh connection and returns all that comes back until close or timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except socket.timeout:
            pass
    return received


class UpstreamProcess:
    """An `Upstream` in a child process, which `kill` ends at once, open connections and all."""

    def __init__(self, name, port=0):
        self.name = name
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).parent / "upstream_server.py"), name,
                                         str(port)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent)
        self.port = int(self.process.stdout.readline())
        self.address = f"127.0.0.1:{self.port}"

    def kill(self):
        self.process.kill()
        self.process.wait()
