"""`switchboard serve` as a user runs it: start, health, metrics, settings, signals."""
import json
import signal
import sqlite3
import subprocess

from conftest import BINARY, curl


def test_serve_starts_with_embedded_sqlite_and_answers(start_server, tmp_path):
    server = start_server()
    assert curl(f"{server.url}/healthz") == (200, '{"status":"ok"}')
    status, body = curl(f"{server.url}/readyz")
    assert status == 200 and json.loads(body) == {"status": "ready", "store": "sqlite"}
    database = tmp_path / "switchboard-data" / "switchboard.sqlite"
    assert database.exists()
    mode = sqlite3.connect(database).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_metrics_are_prometheus_text_with_journey_stages(start_server):
    server = start_server()
    curl(f"{server.url}/healthz")
    status, text = curl(f"{server.url}/metrics")
    assert status == 200
    assert "# TYPE switchboard_request_stage_seconds histogram" in text
    for stage in ("read", "parse", "decode", "process", "write"):
        assert f'switchboard_request_stage_seconds_count{{stage="{stage}"}}' in text


def test_access_log_has_one_line_per_request_with_stages(start_server):
    server = start_server()
    curl(f"{server.url}/healthz")
    curl(f"{server.url}/missing")
    assert server.stop() == 0
    lines = [line for line in server.output().splitlines() if "log=access" in line]
    assert len(lines) == 2
    assert "GET /healthz 200" in lines[0] and "GET /missing 404" in lines[1]
    for field in ("bytes_in=", "bytes_out=", "duration_ms=", "stages_ms=read="):
        assert field in lines[0]


def test_sigterm_and_sigint_stop_gracefully(start_server):
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = start_server()
        assert server.stop(sig) == 0
        assert "Stopped" in server.output()


def test_environment_sets_what_flags_do_not(start_server, tmp_path):
    server = start_server(env={"SWITCHBOARD_DATA": str(tmp_path / "elsewhere")})
    assert curl(f"{server.url}/readyz")[0] == 200
    assert (tmp_path / "elsewhere" / "switchboard.sqlite").exists()


def test_config_file_is_read(start_server, tmp_path):
    config = tmp_path / "switchboard.yaml"
    config.write_text("data: from-config\nmax-body-bytes: 2MiB\nexecution-model: reuseport\n")
    server = start_server("--config", str(config))
    assert curl(f"{server.url}/healthz")[0] == 200
    assert (tmp_path / "from-config" / "switchboard.sqlite").exists()
    assert "execution_model=reuseport" in server.output()


def test_bad_setting_stops_startup_with_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [str(BINARY), "serve", "--listen", "nowhere"], capture_output=True, text=True, cwd=tmp_path, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "switchboard: invalid setting listen (--listen, SWITCHBOARD_LISTEN): expected HOST:PORT, got 'nowhere'"
    ]


def test_help_documents_every_setting():
    result = subprocess.run([str(BINARY), "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for flag in ("--listen", "--data", "--config", "--execution-model", "--event-loops", "--backlog",
                 "--tcp-nodelay", "--tcp-fast-open", "--max-header-bytes", "--max-body-bytes",
                 "--header-read-timeout", "--idle-timeout", "--max-connections", "--drain-timeout",
                 "--worker-threads", "--log-level", "--access-log", "--h2c", "--http2-max-streams",
                 "--http2-stream-window", "--http2-connection-window", "--http2-header-table",
                 "--http2-max-resets"):
        assert flag in result.stdout


def test_curl_sees_json_errors(start_server):
    server = start_server()
    status, body = curl("-X", "POST", f"{server.url}/healthz")
    assert status == 405
    assert json.loads(body)["error"]["code"] == "method_not_allowed"
    big_header = "X-Big: " + "a" * 20000
    status, body = curl("-H", big_header, f"{server.url}/healthz")
    assert status == 431
    assert json.loads(body)["error"]["code"] == "header_too_large"


def test_refused_requests_are_logged_and_counted(start_server):
    server = start_server()
    status, _ = curl("-H", "X-Big: " + "a" * 20000, f"{server.url}/healthz")
    assert status == 431
    _, metrics = curl(f"{server.url}/metrics")
    assert 'switchboard_refused_requests_total{code="header_too_large"} 1' in metrics
    assert server.stop() == 0
    assert any("refused 431" in line and "code=header_too_large" in line for line in server.output().splitlines())
