"""The seed's NAT kinds, made real: network namespaces joined by veth pairs, routers that masquerade with
nftables, and Switchboard's STUN/TURN server on the "public" side (203.0.113.0/24).

    c1 10.0.1.2 -- r1 (NAT) 203.0.113.11 --+
                                           +-- br0 203.0.113.1: switchboard serve
    c2 10.0.2.2 -- r2 (NAT) 203.0.113.12 --+

Behind full-cone NATs (one mapping per client port, kept for every destination, and open to every sender)
two clients that learned their mapped addresses by STUN reach each other directly; behind symmetric NATs
(a random port per destination, open only to that destination) they do not, and TURN connects them."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BINARY

HERE = Path(__file__).parent
SERVER = "203.0.113.1"


def run(*args):
    subprocess.run(args, check=True, capture_output=True)


def in_namespace(namespace, *args):
    run("ip", "netns", "exec", namespace, *args)


# nftables rules of each NAT kind, for router `index`.
NAT_KINDS = {
    # Source ports kept, and whatever reaches a mapped port goes to the client behind it.
    "full-cone": lambda index: ["add rule ip nat post oifname wan masquerade",
                                f"add rule ip nat pre iifname wan udp dport 1024-65535 dnat to 10.0.{index}.2"],
    # A random source port per destination; only replies from that destination come back.
    "symmetric": lambda index: ["add rule ip nat post oifname wan masquerade random"],
}


class NatLab:
    def __init__(self, prefix, kind):
        self.names = {role: f"{prefix}-{role}" for role in ("pub", "r1", "r2", "c1", "c2")}
        for namespace in self.names.values():
            run("ip", "netns", "add", namespace)
            in_namespace(namespace, "ip", "link", "set", "lo", "up")
        pub = self.names["pub"]
        in_namespace(pub, "ip", "link", "add", "br0", "type", "bridge")
        in_namespace(pub, "ip", "addr", "add", f"{SERVER}/24", "dev", "br0")
        in_namespace(pub, "ip", "link", "set", "br0", "up")
        for index in (1, 2):
            router, client = self.names[f"r{index}"], self.names[f"c{index}"]
            run("ip", "link", "add", "wan", "netns", router, "type", "veth", "peer", "name", f"port{index}",
                "netns", pub)
            in_namespace(pub, "ip", "link", "set", f"port{index}", "master", "br0", "up")
            in_namespace(router, "ip", "addr", "add", f"203.0.113.1{index}/24", "dev", "wan")
            in_namespace(router, "ip", "link", "set", "wan", "up")
            run("ip", "link", "add", "lan", "netns", router, "type", "veth", "peer", "name", "eth0", "netns", client)
            in_namespace(router, "ip", "addr", "add", f"10.0.{index}.1/24", "dev", "lan")
            in_namespace(router, "ip", "link", "set", "lan", "up")
            in_namespace(client, "ip", "addr", "add", f"10.0.{index}.2/24", "dev", "eth0")
            in_namespace(client, "ip", "link", "set", "eth0", "up")
            in_namespace(client, "ip", "route", "add", "default", "via", f"10.0.{index}.1")
            in_namespace(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            rules = ["add table ip nat",
                     "add chain ip nat post { type nat hook postrouting priority srcnat; }",
                     "add chain ip nat pre { type nat hook prerouting priority dstnat; }", *NAT_KINDS[kind](index)]
            in_namespace(router, "nft", "; ".join(rules))

    def close(self):
        for namespace in self.names.values():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)

    def start(self, role, *args):
        return subprocess.Popen(["ip", "netns", "exec", self.names[role], *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)

    def peer(self, role, mode):
        return self.start(role, sys.executable, str(HERE / "nat_peer.py"), mode, SERVER, "3478")


@pytest.fixture
def nat_lab(tmp_path):
    labs = []

    def make(kind):
        probe = subprocess.run(["ip", "netns", "add", f"sb{os.getpid()}-probe"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot create network namespaces here: {probe.stderr.strip()}")
        subprocess.run(["ip", "netns", "del", f"sb{os.getpid()}-probe"], capture_output=True)
        lab = NatLab(f"sb{os.getpid()}{len(labs)}", kind)
        labs.append(lab)
        log = open(tmp_path / f"server{len(labs)}.log", "w")
        lab.server = lab.start("pub", str(BINARY), "serve", "--listen", f"{SERVER}:8080", "--stun-listen",
                               f"{SERVER}:3478", "--grpc-listen", "off", "--turn-secret", "north", "--data",
                               str(tmp_path / f"data{len(labs)}"))
        lab.server.stdout.close()
        deadline = time.monotonic() + 30
        while True:
            line = lab.server.stderr.readline()
            log.write(line)
            if "STUN listening" in line:
                break
            assert line and time.monotonic() < deadline, "the server did not start"
        return lab

    yield make
    for lab in labs:
        lab.server.kill()
        lab.server.wait()
        lab.close()


def pair(lab, mode):
    """Runs `mode` on both clients, trading their addresses; answers both sides' JSON lines."""
    first, second = lab.peer("c1", mode), lab.peer("c2", mode)
    addresses = [json.loads(first.stdout.readline()), json.loads(second.stdout.readline())]
    key = "mapped" if mode == "punch" else "relay"
    first.stdin.write(json.dumps(addresses[1][key]) + "\n")
    first.stdin.flush()
    second.stdin.write(json.dumps(addresses[0][key]) + "\n")
    second.stdin.flush()
    results = [json.loads(first.stdout.readline()), json.loads(second.stdout.readline())]
    for process in (first, second):
        assert process.wait(timeout=10) == 0, process.stderr.read()
    return addresses, results


def test_stun_tells_a_client_behind_nat_its_public_address(nat_lab):
    lab = nat_lab("symmetric")
    probe = lab.peer("c1", "stun")
    answer = json.loads(probe.stdout.readline())
    assert probe.wait(timeout=10) == 0, probe.stderr.read()
    assert answer["local"] == "0.0.0.0" or answer["local"].startswith("10.0.1.")
    assert answer["mapped"][0] == "203.0.113.11", answer  # the router's address, not 10.0.1.2


def test_behind_full_cone_nat_clients_reach_each_other_directly(nat_lab):
    lab = nat_lab("full-cone")
    addresses, results = pair(lab, "punch")
    assert [address["mapped"][0] for address in addresses] == ["203.0.113.11", "203.0.113.12"]
    assert results[0]["received"] > 0 and results[1]["received"] > 0, results


def test_behind_symmetric_nat_only_turn_connects_them(nat_lab):
    lab = nat_lab("symmetric")
    addresses, results = pair(lab, "punch")
    assert results == [{"received": 0}, {"received": 0}], (addresses, results)
    relays, results = pair(lab, "relay")
    assert [relay["relay"][0] for relay in relays] == [SERVER, SERVER]
    assert results[0]["received"] > 10 and results[1]["received"] > 10, results
