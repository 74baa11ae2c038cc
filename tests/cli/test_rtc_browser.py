"""Headless Chromium's WebRTC through Switchboard: two RTCPeerConnections signal through a room, use only
relay candidates from /v1/rtc/ice-servers, and echo data-channel messages through Switchboard's TURN. The
server, the page and the browser run in a network namespace with only loopback, so no candidate or
packet can leave the machine (rtc_browser.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BINARY


def test_two_browser_peers_talk_through_turn_relay_to_relay(tmp_path):
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    script = Path(__file__).with_name("rtc_browser.py")
    run = subprocess.run(["timeout", "90", "unshare", "-n", sys.executable, str(script), str(BINARY), str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["errors"] == [], result
    assert result["echoes"] == [f"echo:ping {index}" for index in range(1, 11)], result
    assert result["pair"] == ["relay", "relay"], result
    assert [server["urls"][0].split(":")[0] for server in result["iceServers"]] == ["stun", "turn"]
    relayed = {line.split(" ")[0]: float(line.split(" ")[1]) for line in result["metrics"]}
    assert relayed['switchboard_turn_relayed_packets_total{direction="to_peer"}'] >= 10
    assert relayed['switchboard_turn_relayed_packets_total{direction="to_client"}'] >= 10
    assert not [line for line in result["console"] if "favicon" not in line], result["console"]
