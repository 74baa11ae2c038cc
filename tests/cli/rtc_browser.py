"""Runs inside a network namespace with only loopback (`unshare -n`, see test_rtc_browser.py): a
Switchboard server with TURN, a static server for rtc_page.html, and headless Chromium on that page.
Prints the page's window.result as JSON."""
import functools
import http.server
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

binary, workdir = sys.argv[1], Path(sys.argv[2])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(Path(__file__).parent))
pages = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
threading.Thread(target=pages.serve_forever, daemon=True).start()
origin = f"http://127.0.0.1:{pages.server_address[1]}"

log = open(workdir / "server.log", "w")
server = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data", str(workdir / "data"),
                           "--grpc-listen", "off", "--stun-listen", "127.0.0.1:3478", "--turn-secret", "browser-test",
                           "--turn-allowed-peers", "127.0.0.0/8", "--cors-origins", origin],
                          stdout=log, stderr=subprocess.STDOUT)
try:
    deadline = time.monotonic() + 30
    while not (match := re.search(r"address=\S+:(\d+) .*Listening", (workdir / "server.log").read_text())):
        assert time.monotonic() < deadline and server.poll() is None, (workdir / "server.log").read_text()
        time.sleep(0.05)
    url = f"http://127.0.0.1:{match.group(1)}"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--allow-loopback-in-peer-connection"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        browser.get(f"{origin}/rtc_page.html?server={url}")
        deadline = time.monotonic() + 30
        result = {}
        while time.monotonic() < deadline:
            result = browser.execute_script("return window.result;")
            if (len(result["echoes"]) >= 10 and result["pair"]) or result["errors"]:
                break
            time.sleep(0.2)
        metrics = subprocess.run(["curl", "-s", f"{url}/metrics"], capture_output=True, text=True).stdout
        result["metrics"] = [line for line in metrics.splitlines() if line.startswith("switchboard_turn")]
        result["console"] = [entry["message"] for entry in browser.get_log("browser")]
        print(json.dumps(result))
    finally:
        browser.quit()
finally:
    server.terminate()
    server.wait()
