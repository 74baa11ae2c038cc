"""The OpenAPI description: served as kept in the repo, and checked against the live server by schemathesis
(generated valid and invalid requests for every operation: no 5xx, every status code, content type and body
as described)."""
import json
import os
import subprocess
from pathlib import Path

from conftest import ROOT, curl

HERE = Path(__file__).resolve().parent


def test_the_description_is_served_as_kept(start_server):
    server = start_server()
    status, body = curl(f"{server.url}/openapi.json")
    assert status == 200
    assert json.loads(body) == json.loads((ROOT / "Sources/SwitchboardAPI/openapi.json").read_text())


def test_schemathesis_finds_no_difference_between_the_description_and_the_server(start_server, tmp_path):
    server = start_server("--access-log", "off", "--max-body-bytes", "64KiB")
    schemathesis = Path(ROOT / ".venv/bin/schemathesis")
    result = subprocess.run(
        [str(schemathesis), "--config-file", str(HERE / "schemathesis.toml"), "run", f"{server.url}/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         "--max-examples", "25", "--seed", "7", "--request-timeout", "10", "--workers", "1",
         # Streams that never end (SSE, WebSocket) have nothing to compare in a finite response.
         "--exclude-path-regex", "/events$", "--exclude-path", "/v1/ws",
         "--report", "junit", "--report-dir", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": str(HERE)},
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
