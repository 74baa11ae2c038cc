"""The web console in headless Chromium: each page loads without console errors and shows real data (a
message published by the test in the live tail, a job's timeline through to succeeded, the journey chart
under load), the pattern lab measures all four patterns with nothing missed, and with JWT on the page's
data needs a token. Each test saves a screenshot of its page to docs/console/."""
import json
import subprocess
import time

import jwt
import pytest
import websockets.sync.client
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from conftest import ROOT, curl, headless_chromium
from edge_support import Edge, Upstream, UpstreamProcess

SCREENSHOTS = ROOT / "docs" / "console"


@pytest.fixture
def browser():
    driver = headless_chromium("--window-size=1280,900", browser_log=True)
    yield driver
    driver.quit()


def until(check, timeout=15, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except StaleElementReferenceException:  # the page re-rendered what was being read
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def errors(browser):
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def page(browser, name):
    browser.find_element(By.CSS_SELECTOR, f'nav button[data-page="{name}"]').click()


def screenshot(browser, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_each_page_shows_live_data_without_errors(start_server, browser, tmp_path):
    server = start_server()
    browser.get(f"{server.url}/console")
    # Overview: live figures from /metrics, and the journey chart once requests have been timed.
    until(lambda: "open connections" in browser.find_element(By.ID, "cards").text, message="overview cards")
    # Each stage's histogram with its percentiles, from the buckets of the last five seconds: requests
    # made while waiting, so that they are always in the window the chart shows.
    process = lambda: browser.execute_script(
        "const g = document.querySelector('#journey g[data-stage=process]');"
        "return g && [Number(g.dataset.count), Number(g.dataset.p50), Number(g.dataset.p99)]")

    def warmed():
        for _ in range(10):
            curl(f"{server.url}/v1/topics/warm/messages")
        return process() and process()[0] >= 30
    until(warmed, timeout=30, message="the process stage's histogram")
    assert browser.find_elements(By.CSS_SELECTOR, "#journey rect")
    count, p50, p99 = process()
    assert 0 <= p50 <= p99 < 1000
    # Sessions by transport: one SSE stream and one WebSocket held open by the test, and the slowest
    # request listed with its stages, without its query (which held a token).
    stream = subprocess.Popen(["curl", "-s", "-N", f"{server.url}/v1/topics/console-sse/events"],
                              stdout=subprocess.DEVNULL)
    socket = websockets.sync.client.connect(f"ws://127.0.0.1:{server.port}/v1/ws")
    try:
        card = lambda key: browser.execute_script(
            f"return document.querySelector('[data-card={key}] .value')?.textContent")
        until(lambda: card("sse") == "1" and card("websocket") == "1", message="the SSE and WebSocket sessions")
        assert int(card("http1")) >= 3
        # A long poll is held on purpose: not listed. A body sent slowly is: 144 KB at 48 KB/s.
        status, _ = curl(f"{server.url}/v1/topics/console-held/messages?wait=1.2")
        assert status == 200
        body = tmp_path / "slow-body"
        body.write_bytes(b"x" * 144_000)
        status, _ = curl("--limit-rate", "48k", "--data-binary", f"@{body}",
                         f"{server.url}/v1/topics/console-slow/messages?access_token=SECRET")
        assert status == 201
        slow_row = lambda: browser.execute_script(
            "return [...document.querySelectorAll('#slow-rows tr')].map((row) => [...row.cells].map((c) => c.textContent))"
            ".find((cells) => cells[1] === 'POST /v1/topics/console-slow/messages')")
        until(slow_row, message="the slow request listed")
        finished, request, status, total, stages = slow_row()
        assert float(total) >= 1000 and "decode" in stages
        slowest = browser.find_element(By.ID, "slow-rows").text
        assert "SECRET" not in slowest and "console-held" not in slowest
        screenshot(browser, "overview")
    finally:
        socket.close()
        stream.terminate()
    until(lambda: card("sse") == "0" and card("websocket") == "0", message="the sessions counted closed")

    page(browser, "topics")
    topic = browser.find_element(By.ID, "tail-topic")
    topic.clear()
    topic.send_keys("console-tail")
    browser.find_element(By.CSS_SELECTOR, "#tail-form button").click()
    until(lambda: "tailing" in browser.find_element(By.ID, "tail-status").text, message="the tail to open")
    status, _ = curl("-X", "POST", "--data", "published-by-the-test", f"{server.url}/v1/topics/console-tail/messages")
    assert status == 201
    until(lambda: "published-by-the-test" in browser.find_element(By.ID, "tail-log").text, message="the message")
    publish_topic = browser.find_element(By.ID, "publish-topic")
    publish_topic.clear()
    publish_topic.send_keys("console-tail")
    browser.find_element(By.CSS_SELECTOR, "#publish-form button").click()
    until(lambda: "offset 2" in browser.find_element(By.ID, "publish-status").text, message="the form's publish")
    until(lambda: "#2" in browser.find_element(By.ID, "tail-log").text, message="the form's message in the tail")
    latest = lambda: browser.execute_script(
        "return document.querySelector('#topic-rows tr[data-topic=console-tail] .latest')?.textContent")
    until(lambda: latest() == "2", message="the topic listed with its latest offset")
    screenshot(browser, "topics")

    # A dead letter, made by an external worker: one attempt, failed, with an error that is markup (shown
    # as text, never run: a worker's error must not reach an administrator's page as script).
    status, body = curl("-X", "POST", "--data", '{"queue":"ext","type":"t","input":{},"maxAttempts":1}',
                        f"{server.url}/v1/jobs")
    assert status == 202
    status, body = curl("-X", "POST", f"{server.url}/v1/queues/ext/claim")
    claimed = json.loads(body)
    status, _ = curl("-X", "POST", "--data", json.dumps({"leaseToken": claimed["lease"]["token"],
                                                "error": "boom <img src=x onerror=window.pwned=1>"}),
                     f"{server.url}/v1/jobs/{claimed['id']}/fail")
    assert status == 200
    page(browser, "jobs")
    queue_cell = lambda state: browser.execute_script(
        f"return document.querySelector('#queue-rows tr[data-queue=ext] td:nth-child({state})')?.textContent")
    until(lambda: queue_cell(6) == "1", message="the dead letter counted")
    until(lambda: "boom <img src=x" in browser.find_element(By.ID, "dead-rows").text, message="the dead letter")
    assert browser.execute_script("return window.pwned") is None
    browser.find_element(By.CSS_SELECTOR, "#dead-rows button").click()
    until(lambda: queue_cell(2) == "1" and queue_cell(6) == "0", message="the requeued job counted as queued")
    browser.find_element(By.CSS_SELECTOR, "#submit-form button").click()
    states = lambda: browser.execute_script(
        "return [...document.querySelectorAll('#timeline-rows .state')].map((cell) => cell.textContent)")
    until(lambda: states() == ["queued", "running", "succeeded"], timeout=10, message="the job's timeline")
    screenshot(browser, "jobs")

    # Uploads: one started and left at 40 % shows its bar.
    status, headers = curl("-i", "-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Length: 1000",
                           "-H", "Upload-Metadata: filename cmVwb3J0LmNzdg==", f"{server.url}/v1/uploads")
    assert status == 201
    location = next(line.split(": ", 1)[1].strip() for line in headers.splitlines() if line.startswith("Location"))
    status, _ = curl("-X", "PATCH", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                     "-H", "Content-Type: application/offset+octet-stream", "--data-binary", "x" * 400,
                     f"{server.url}{location}")
    assert status == 204
    page(browser, "uploads")
    until(lambda: "400 of 1000" in browser.find_element(By.ID, "upload-rows").text, message="the upload's progress")
    assert "filename=report.csv" in browser.find_element(By.ID, "upload-rows").text
    screenshot(browser, "uploads")

    # Connections: the listener this test reached, and the browser's own connection with its TCP_INFO.
    page(browser, "connections")
    until(lambda: f"127.0.0.1:{server.port}" in browser.find_element(By.ID, "listener-rows").text,
          message="the listening socket")
    listener = lambda port: browser.execute_script(
        "return [...document.querySelectorAll('#listener-rows tr')].map((row) => [...row.cells].map((c) => c.textContent))"
        f".find((cells) => cells[0].endsWith(':{port}'))")
    # Each listening socket named with what it serves and how: the HTTP one, and gRPC's.
    event_loops = json.loads(curl(f"{server.url}/v1/connections")[1])["eventLoops"]
    assert listener(server.port)[1:4] == ["http", "shared-listener", str(event_loops)]
    assert listener(server.grpc_target.split(":")[1])[1] == "grpc"
    assert "execution model shared-listener" in browser.find_element(By.ID, "execution").text
    assert "ListenOverflows" in browser.find_element(By.ID, "execution").text
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "#connection-rows tr"), message="a connection")
    screenshot(browser, "connections")
    assert errors(browser) == []


def test_the_pattern_lab_measures_all_four_patterns_with_nothing_missed(start_server, browser):
    server = start_server()
    browser.get(f"{server.url}/console")
    page(browser, "lab")
    for field, value in (("lab-rate", "20"), ("lab-interval", "500"), ("lab-seconds", "10")):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "lab-run").click()
    until(lambda: browser.find_element(By.ID, "lab-status").get_attribute("data-done"), timeout=40,
          message="the lab to finish")
    rows = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "#lab-rows tr"):
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        rows[cells[0]] = cells
    assert set(rows) == {"short poll", "long poll", "SSE", "WebSocket"}
    published = int(browser.find_element(By.ID, "lab-status").text.split()[1])
    assert published >= 100
    for name, (_, received, missed, duplicated, p50, p99, requests, sent_bytes) in rows.items():
        assert int(received) == published and missed == "0" and duplicated == "0", (name, rows[name])
        assert float(p50) >= 0 and float(p99) >= float(p50) and int(requests) >= 1 and int(sent_bytes) > 0
    # The seed's trade-off, measured: short polling makes a request per interval, streams make one.
    assert int(rows["short poll"][6]) >= 15 and rows["SSE"][6] == "1" and rows["WebSocket"][6] == "1"
    screenshot(browser, "pattern-lab")
    assert errors(browser) == []


def test_with_jwt_on_the_console_needs_an_admin_token(start_server, browser):
    secret = "console-secret-of-at-least-32-bytes!!"
    server = start_server("--jwt-secret", secret)
    browser.get(f"{server.url}/console")
    gate = lambda: browser.find_element(By.ID, "gate")
    until(lambda: "Sign in" in gate().text, message="the sign-in notice")
    assert not browser.find_element(By.ID, "overview").is_displayed()
    screenshot(browser, "sign-in")
    expiry = int(time.time()) + 600
    reader = jwt.encode({"sub": "reader", "subscribe": ["*"], "exp": expiry}, secret, algorithm="HS256")
    token = browser.find_element(By.ID, "token")
    token.send_keys(reader)
    browser.execute_script("document.getElementById('token').dispatchEvent(new Event('change'))")
    until(lambda: "no admin claim" in gate().text, message="the refusal of a token without the admin claim")
    assert not browser.find_element(By.ID, "overview").is_displayed()
    # The API behind the uploads page is an administrator's too.
    assert curl("-H", f"Authorization: Bearer {reader}", f"{server.url}/v1/uploads")[0] == 403
    admin = jwt.encode({"sub": "operator", "admin": True, "exp": expiry}, secret, algorithm="HS256")
    token.clear()
    token.send_keys(admin)
    browser.execute_script("document.getElementById('token').dispatchEvent(new Event('change'))")
    until(lambda: not gate().is_displayed(), message="the console to open")
    until(lambda: "open connections" in browser.find_element(By.ID, "cards").text, message="overview cards")
    page(browser, "jobs")
    browser.find_element(By.CSS_SELECTOR, "#submit-form button").click()
    until(lambda: "submitted" in browser.find_element(By.ID, "submit-status").text, message="the submission")
    states = lambda: browser.execute_script(
        "return [...document.querySelectorAll('#timeline-rows .state')].map((cell) => cell.textContent)")
    until(lambda: "succeeded" in states(), timeout=10, message="the job to succeed")
    status, body = curl("-H", f"Authorization: Bearer {admin}", f"{server.url}/v1/uploads")
    assert status == 200 and json.loads(body) == {"uploads": []}


def test_the_edge_console_shows_listeners_routes_and_upstream_health(tmp_path, browser):
    a, b = Upstream("a"), UpstreamProcess("b")  # b is killed: its open connections end with it
    edge = Edge({
        "admin": "127.0.0.1:0",
        "listeners": [{"name": "web", "kind": "http", "listen": "127.0.0.1:0",
                       "routes": [{"pathPrefix": "/api", "cluster": "main"}]}],
        "clusters": [{"name": "main", "balance": "least-connections",
                      "upstreams": [{"address": a.address}, {"address": b.address}],
                      "healthCheck": {"interval": "300ms", "healthy": 1, "unhealthy": 2}}],
    }, tmp_path)
    try:
        browser.get(f"{edge.url('admin')}/console")
        visible = lambda: browser.execute_script(
            "return [...document.querySelectorAll('nav button')].filter((b) => !b.hidden).map((b) => b.dataset.page)")
        until(lambda: visible() == ["overview", "connections", "edge"], message="the edge's pages")
        for _ in range(20):
            assert curl(f"{edge.url('web')}/api/items")[0] == 200
        page(browser, "edge")
        listeners = lambda: browser.find_element(By.ID, "edge-listener-rows").text
        until(lambda: f"127.0.0.1:{edge.ports['web']}" in listeners(), message="the listener's bound address")
        assert "/api → main" in listeners() and "shared-listener" in listeners()
        state = lambda upstream: browser.execute_script(
            f"return document.querySelector('#edge-upstream-rows tr[data-upstream=\"{upstream.address}\"] .state')"
            "?.textContent")
        until(lambda: state(a) == "healthy" and state(b) == "healthy", message="both upstreams healthy")
        route_rate = lambda: browser.execute_script(
            "return Number(document.querySelector('#edge-route-rows tr td:nth-child(3)')?.textContent)")
        until(lambda: route_rate() > 0, message="the route's requests per second")
        b.kill()
        until(lambda: state(b) == "unhealthy", timeout=10, message="the stopped upstream shown unhealthy")
        assert state(a) == "healthy"
        screenshot(browser, "edge")
        # The kernel's view of the edge's sockets, each named by its listener.
        page(browser, "connections")
        rows = lambda: browser.find_element(By.ID, "listener-rows").text
        until(lambda: f"127.0.0.1:{edge.ports['web']} web shared-listener" in rows()
              and f"127.0.0.1:{edge.ports['admin']} admin" in rows(), message="the edge's listeners named")
        # The overview of the edge: its own requests, slowest first.
        page(browser, "overview")
        until(lambda: "GET /api/items" in browser.find_element(By.ID, "slow-rows").text, message="the edge's requests")
        assert errors(browser) == []
    finally:
        a.stop()
        edge.stop()
