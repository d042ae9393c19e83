"""An authenticated tracking URI (http://user:password@host:port): the reachability check
sends HTTP basic auth and no message shows the password. A small real HTTP server checks the
header here (tests/e2e/test_tracking_auth.py runs MLflow's own basic-auth server)."""

from __future__ import annotations

import base64
import http.server
import threading

import pytest
from clitools import one_error_line, sweep

from orchestrator.errors import UserError
from orchestrator.tracking import check_reachable

PASSWORD = "p@ss:w0rd"
ENCODED = "p%40ss%3Aw0rd"


class AuthHandler(http.server.BaseHTTPRequestHandler):
    """/health answers anyone (as MLflow's does); the API wants `alice` and PASSWORD."""

    seen: list[str | None]

    def do_GET(self):
        self.seen.append(self.headers.get("Authorization"))
        want = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        ok = self.path == "/health" or self.headers.get("Authorization") == want
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def auth_server():
    seen: list[str | None] = []
    handler = type("Handler", (AuthHandler,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch, tmp_path):
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlflow/credentials


def test_credentials_in_the_url_are_sent(auth_server):
    port, seen = auth_server
    check_reachable(f"http://alice:{ENCODED}@127.0.0.1:{port}")
    expected = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert seen == [expected, expected]  # /health, then an API call that needs them


def test_credentials_from_mlflows_variables_are_sent(auth_server, monkeypatch):
    port, seen = auth_server
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    check_reachable(f"http://127.0.0.1:{port}")
    assert seen[-1] == "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()


def test_refused_credentials_are_one_line_without_the_password(auth_server):
    port, _ = auth_server
    with pytest.raises(UserError) as e:
        check_reachable(f"http://alice:wrong-{ENCODED}@127.0.0.1:{port}")
    assert str(e.value) == (
        f"the MLflow tracking server at http://alice:***@127.0.0.1:{port} did not accept the "
        "password of user 'alice' (HTTP 401)"
    )
    with pytest.raises(UserError) as e:
        check_reachable(f"http://127.0.0.1:{port}")
    assert str(e.value).startswith(
        f"the MLflow tracking server at http://127.0.0.1:{port} needs a user name and password"
    )


def test_cli_never_prints_the_password():
    """`sweep table --tracking-uri http://user:pw@host:port` printed the password and looked up
    `user:pw@host` as a host name."""
    for url in (f"http://alice:{ENCODED}@127.0.0.1:9", f"http://alice:{PASSWORD}@127.0.0.1:9"):
        r = sweep("table", "--tracking-uri", url)
        assert r.exit_code == 2
        line = one_error_line(r)
        assert line.startswith(
            "error: cannot reach the MLflow tracking server at http://alice:***@127.0.0.1:9: "
        )
        assert "Connection refused" in line  # the host was 127.0.0.1, not "alice:...@127.0.0.1"
        assert "w0rd" not in r.output and ENCODED not in r.output
