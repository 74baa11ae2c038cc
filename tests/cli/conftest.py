"""Runs the real `switchboard` binary as a user would and talks to it with curl."""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SWITCHBOARD_BIN", ROOT / ".build" / "debug" / "switchboard"))


class Server:
    """A `switchboard serve` process on a free port, with its log."""

    def __init__(self, args, env, cwd, port=0):
        self.log_path = Path(cwd) / "server.log"
        self.log = open(self.log_path, "w")
        # Several servers may run at once: their side listeners take free ports too.
        if "--grpc-listen" not in args:
            args = [*args, "--grpc-listen", "127.0.0.1:0"]
        if "--grpc-tls-listen" not in args:
            args = [*args, "--grpc-tls-listen", "127.0.0.1:0"]
        if "--stun-listen" not in args:
            args = [*args, "--stun-listen", "127.0.0.1:0"]
        if "--turn-tls-listen" not in args:
            args = [*args, "--turn-tls-listen", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "--listen", f"127.0.0.1:{port}", *args],
            cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.port = self._wait_for_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_for_port(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"address=\S+:(\d+) .*Listening", self.log_path.read_text())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            time.sleep(0.05)
        raise TimeoutError(self.log_path.read_text())

    @property
    def grpc_target(self):
        """`127.0.0.1:PORT` of the gRPC listener, once it listens."""
        port = wait_for_log(self, r"grpc_address=127\.0\.0\.1:(\d+)", timeout=30).group(1)
        return f"127.0.0.1:{port}"

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.log.close()
        return code

    def output(self):
        return self.log_path.read_text()


def wait_for_log(process, pattern, timeout=5):
    """The first match of `pattern` in a server's log, waiting for it: access lines are written in batches,
    up to 100 ms after their responses."""
    deadline = time.monotonic() + timeout
    while not (match := re.search(pattern, process.output(), re.M)):
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.05)
    return match


@pytest.fixture
def start_server(tmp_path):
    servers = []

    def start(*args, env=None, port=0):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        environment.update(env or {})
        server = Server(list(args), environment, tmp_path, port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def headless_chromium(*arguments, browser_log=False):
    """Debian's Chromium, headless, driven by selenium; with `browser_log`, its console is kept for
    `get_log("browser")`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *arguments):
        options.add_argument(argument)
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def curl(*args):
    """Runs curl and returns (status code, body)."""
    result = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", *args],
        capture_output=True, text=True, check=True,
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def free_port():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tls_port(server):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        match = re.search(r"tls_address=\S+:(\d+) .*Listening with TLS", server.output())
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise TimeoutError(server.output())


def curl_tls(certificate, *args):
    result = subprocess.run(["curl", "-s", "--max-time", "10", "--cacert", str(certificate), "-w", "\n%{http_code}",
                             *args], capture_output=True, text=True)
    body, _, status = result.stdout.rpartition("\n")
    return int(status or 0), body


def metric(server, name):
    """The value of an unlabelled metric of the server (this look is a connection of its own)."""
    metrics = curl(f"{server.url}/metrics")[1]
    return float(re.search(rf"^{name} (\S+)", metrics, re.M).group(1))


def accepted_connections(server):
    """The server's count of connections accepted so far (this look adds one)."""
    return int(metric(server, "switchboard_accepted_connections_total"))
