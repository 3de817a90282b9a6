"""A live ``/metrics`` endpoint that wants a bearer token, for the tests that run a real Prometheus."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

METRICS_TOKEN = "s3cret-token"


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != f"Bearer {METRICS_TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        body = b"# TYPE npusuite_test_things_total counter\nnpusuite_test_things_total 42\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def metrics_token() -> str:
    return METRICS_TOKEN


@pytest.fixture
def endpoint():
    """``127.0.0.1:PORT`` serving ``npusuite_test_things_total 42`` to requests with :func:`metrics_token`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
