"""The standard gRPC interop cases against `serve --grpc-interop on`, run by the official Ruby interop client
that Debian's ruby-grpc ships (src/ruby/pb/test/client.rb): a client not written here, each case a test."""
import glob
import subprocess

import pytest

CASES = [
    "empty_unary", "large_unary", "client_compressed_unary", "client_streaming", "client_compressed_streaming",
    "server_streaming", "ping_pong", "empty_stream", "timeout_on_sleeping_server", "cancel_after_begin",
    "cancel_after_first_response", "unimplemented_method", "unimplemented_service", "status_code_and_message",
    "custom_metadata",
]


@pytest.fixture(scope="module")
def interop_client():
    clients = glob.glob("/usr/lib/*/rubygems-integration/*/gems/grpc-*/src/ruby/pb/test/client.rb")
    assert clients, "Debian's ruby-grpc is not installed (scripts/test installs it)"
    return clients[0]


@pytest.mark.parametrize("case", CASES)
def test_interop_case(start_server, interop_client, case):
    server = start_server("--grpc-interop", "on")
    host, port = server.grpc_target.split(":")
    result = subprocess.run(["ruby", interop_client, f"--server_host={host}", f"--server_port={port}",
                             f"--test_case={case}", "--use_tls=false"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_service_is_off_by_default(start_server, interop_client):
    server = start_server()
    host, port = server.grpc_target.split(":")
    result = subprocess.run(["ruby", interop_client, f"--server_host={host}", f"--server_port={port}",
                             "--test_case=empty_unary", "--use_tls=false"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Unimplemented" in result.stdout + result.stderr
