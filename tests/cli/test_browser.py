"""Headless Chromium's own EventSource and WebSocket receive every message, across a server restart, and
twenty EventSources to one origin share one HTTP/2 connection."""
import functools
import http.server
import threading
import time
from pathlib import Path

import pytest
from conftest import curl, free_port, headless_chromium, metric, tls_port

PAGE_DIRECTORY = Path(__file__).parent


@pytest.fixture
def page_server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(PAGE_DIRECTORY))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def browser():
    # The TLS test serves a development certificate that this browser profile does not know.
    driver = headless_chromium("--ignore-certificate-errors")
    yield driver
    driver.quit()


def wait_for(browser, name, count, timeout=20):
    deadline = time.monotonic() + timeout
    received = []
    while time.monotonic() < deadline:
        received = browser.execute_script(f"return window.{name};")
        if len(received) >= count:
            return received
        time.sleep(0.1)
    return received


def publish_range(server, first, last):
    for index in range(first, last + 1):
        status, _ = curl("-X", "POST", "--data", f"m{index}", f"{server.url}/v1/topics/browser/messages")
        assert status == 201


def test_browser_receives_everything_and_resumes_after_restart(start_server, page_server, browser):
    port = free_port()
    server = start_server("--cors-origins", page_server, port=port)
    browser.get(f"{page_server}/browser_page.html?server={server.url}")
    publish_range(server, 1, 20)
    expected = [[index, f"m{index}"] for index in range(1, 21)]
    assert wait_for(browser, "sse", 20) == expected
    assert wait_for(browser, "ws", 20) == expected

    assert server.stop() == 0
    server = start_server("--cors-origins", page_server, port=port)
    publish_range(server, 21, 30)
    expected = [[index, f"m{index}"] for index in range(1, 31)]
    assert wait_for(browser, "sse", 30) == expected
    assert wait_for(browser, "ws", 30) == expected


def test_twenty_event_sources_share_one_http2_connection(start_server, page_server, browser, tmp_path):
    server = start_server("--cors-origins", page_server, "--data", str(tmp_path / "data"),
                          "--tls-self-signed", "--tls-listen", "127.0.0.1:0")
    origin = f"https://localhost:{tls_port(server)}"
    browser.get(f"{page_server}/browser_streams.html?server={origin}")
    deadline = time.monotonic() + 20
    while browser.execute_script("return window.open;") < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert browser.execute_script("return window.open;") == 20
    # Twenty streams open, and one connection holds them: the browser's, beside this look at the metrics.
    # (Chromium may race a few sockets while it learns that the origin speaks h2; it keeps one.)
    deadline = time.monotonic() + 5
    while metric(server, "switchboard_open_connections") != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric(server, "switchboard_open_connections") == 2
    for n in range(20):
        status, _ = curl("-X", "POST", "--data", f"to {n}", f"{server.url}/v1/topics/browser{n}/messages")
        assert status == 201
    deadline = time.monotonic() + 20
    while len(browser.execute_script("return window.received;")) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(browser.execute_script("return window.received;")) == sorted([n, f"to {n}"] for n in range(20))
