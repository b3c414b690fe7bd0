"""A fake upstream on 127.0.0.1 that answers in each network's real format, with fault switches."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.fakes import FakeRequest, discover

# The providers' base_url override keeps the path, so the path alone tells the network.
FAKES = discover()
NETWORKS: frozenset[str] = frozenset(FAKES)
GARBAGE = b"<html>oops</html>"


@dataclass(frozen=True)
class Fault:
    """One way for a network to misbehave; exactly one kind per fault."""

    kind: Literal["status", "rate_limit", "timeout", "garbage", "latency", "answer"]
    status: int = 503  # for "status" and "answer"
    retry_after: int = 1  # for "rate_limit" (429 + Retry-After header)
    # "timeout": wait this long, then drop the connection unanswered; "latency": wait, then answer.
    seconds: float = 0.0
    # For "answer": this exact body and these headers, e.g. a network's own error format.
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Call:
    """One request the fake received; network is None for a path no network serves."""

    network: str | None
    path: str
    params: list[tuple[str, str]]
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeUpstream

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeouts, stop()) is expected here, not a test failure.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, False)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = FakeRequest(
            method=method,
            path=split.path,
            params=parse_qsl(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        network = next((f.network for f in FAKES.values() if f.serves(split.path)), None)
        headers = tuple(request.headers.items())
        fake._record(Call(network, split.path, request.params, method, headers, request.body))
        if network is None:
            self._send(404, b"not found", "text/plain")
            return
        fault = fake._fault_for(network)
        if fault is not None and fault.kind in ("timeout", "latency"):
            stopping = fake._stopping.wait(fault.seconds)
            if fault.kind == "timeout" or stopping:
                self.close_connection = True
                return
        if fault is not None and fault.kind == "status":
            self._send(fault.status, b"upstream error", "text/plain")
        elif fault is not None and fault.kind == "rate_limit":
            headers_out = {"Retry-After": str(fault.retry_after)}
            self._send(429, b"rate limited", "text/plain", headers_out)
        elif fault is not None and fault.kind == "garbage":
            self._send(200, GARBAGE, "text/html")
        elif fault is not None and fault.kind == "answer":
            self._send(fault.status, fault.body, "application/json", dict(fault.headers))
        else:
            answer = FAKES[network].answer(request, lambda url: fake._count(network, url))
            self._send(answer.status, answer.body, answer.content_type, dict(answer.headers))

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class FakeUpstream:
    """One HTTP server on a free 127.0.0.1 port answering every network by path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._faults: dict[str, Fault] = {}
        self._calls: list[Call] = []
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def set_count(self, network: str, url: str, count: int) -> None:
        """Make `network` answer `count` for `url`; counts not set are 0."""
        _check_network(network)
        with self._lock:
            self._counts[(network, url)] = count

    def set_fault(self, network: str | None, fault: Fault | None) -> None:
        """Make `network` (None: every network) misbehave; a None fault clears it."""
        names = NETWORKS if network is None else {_check_network(network)}
        with self._lock:
            for name in names:
                if fault is None:
                    self._faults.pop(name, None)
                else:
                    self._faults[name] = fault

    def calls(self, network: str | None = None) -> list[Call]:
        """The requests received so far, oldest first; only `network`'s when given."""
        with self._lock:
            return [c for c in self._calls if network is None or c.network == network]

    def reset(self) -> None:
        """Forget counts, faults and recorded calls."""
        with self._lock:
            self._counts.clear()
            self._faults.clear()
            self._calls.clear()

    def start(self) -> None:
        """Listen on a free port and serve from a daemon thread."""
        if self._server is not None:
            return
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        # A short poll interval keeps stop() (and so every test's teardown) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name="fake-upstream", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, wake delayed answers and close kept-alive connections."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):  # the client closed it already
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def _count(self, network: str, url: str) -> int:
        with self._lock:
            return self._counts.get((network, url), 0)

    def _fault_for(self, network: str) -> Fault | None:
        with self._lock:
            return self._faults.get(network)

    def _track(self, conn: socket.socket, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


def _check_network(network: str) -> str:
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; known: {sorted(NETWORKS)}")
    return network


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started FakeUpstream, stopped after the test."""
    with FakeUpstream() as fake:
        yield fake
