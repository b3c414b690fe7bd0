"""A fake upstream on 127.0.0.1 that answers in each network's real format, with fault switches."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import sys
import threading
import time
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

    kind: Literal[
        "status", "rate_limit", "timeout", "garbage", "latency", "answer", "drip", "reset", "echo"
    ]
    status: int = 503  # for "status" and "answer"
    retry_after: int = 1  # for "rate_limit" (429 + Retry-After header)
    # "timeout": wait this long, then drop the connection unanswered; "latency": wait, then answer;
    # "drip": send the network's real answer one byte per this many seconds. "reset": drop the
    # connection with a TCP RST instead of answering.
    seconds: float = 0.0
    # For "answer": this exact body and these headers, e.g. a network's own error format.
    # "echo": answer `status` with an error that quotes the request's credentials (see echo()).
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
    # When it arrived (time.monotonic()), so that a test can tell what went out when.
    at: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops the connects of a burst, which the client's
    # kernel resends only after a second: a pause no real network would add.
    request_queue_size = 128
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
        call = Call(
            network, split.path, request.params, method, headers, request.body, time.monotonic()
        )
        fake._record(call)
        if network is None:
            self._send(404, b"not found", "text/plain")
            return
        fault = fake._fault_for(network, request.params)
        if fault is not None and fault.kind in ("timeout", "latency"):
            stopping = fake._stopping.wait(fault.seconds)
            if fault.kind == "timeout" or stopping:
                self.close_connection = True
                return
        if fault is not None and fault.kind == "reset":
            self._reset()
        elif fault is not None and fault.kind == "drip":
            answer = FAKES[network].answer(request, lambda url: fake._count(network, url))
            self._drip(answer.status, answer.body, answer.content_type, fault.seconds)
        elif fault is not None and fault.kind == "status":
            self._send(fault.status, b"upstream error", "text/plain")
        elif fault is not None and fault.kind == "rate_limit":
            headers_out = {"Retry-After": str(fault.retry_after)}
            self._send(429, b"rate limited", "text/plain", headers_out)
        elif fault is not None and fault.kind == "garbage":
            self._send(200, GARBAGE, "text/html")
        elif fault is not None and fault.kind == "echo":
            self._send(fault.status, echo(request), "application/json")
        elif fault is not None and fault.kind == "answer":
            self._send(fault.status, fault.body, "application/json", dict(fault.headers))
        else:
            answer = FAKES[network].answer(request, lambda url: fake._count(network, url))
            self._send(answer.status, answer.body, answer.content_type, dict(answer.headers))

    def _reset(self) -> None:
        """Close at once with linger 0, so the kernel sends RST rather than FIN."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The buffered reader holds a reference that would keep the socket open past close().
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def _drip(self, status: int, body: bytes, content_type: str, seconds: float) -> None:
        """A valid answer whose body trickles in: every read is quick, the whole is endless."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(len(body)):
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()
            if self.server.fake._stopping.wait(seconds):
                self.close_connection = True
                return

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
        self._url_faults: dict[tuple[str, str], Fault] = {}
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

    def set_url_fault(self, network: str, url: str, fault: Fault | None) -> None:
        """Make `network` misbehave on requests with `url` as a query parameter's value (a
        batch asking for it fails whole); a None fault clears it."""
        _check_network(network)
        with self._lock:
            if fault is None:
                self._url_faults.pop((network, url), None)
            else:
                self._url_faults[(network, url)] = fault

    def calls(self, network: str | None = None) -> list[Call]:
        """The requests received so far, oldest first; only `network`'s when given."""
        with self._lock:
            return [c for c in self._calls if network is None or c.network == network]

    def reset(self) -> None:
        """Forget counts, faults and recorded calls."""
        with self._lock:
            self._counts.clear()
            self._faults.clear()
            self._url_faults.clear()
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

    def _fault_for(self, network: str, params: list[tuple[str, str]]) -> Fault | None:
        with self._lock:
            for _, value in params:
                if (network, value) in self._url_faults:
                    return self._url_faults[(network, value)]
            return self._faults.get(network)

    def _track(self, conn: socket.socket, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


def echo(request: FakeRequest) -> bytes:
    """An error quoting everything the request carried (credentials first, so that a message
    cut short still holds them), in each field where some network puts its error text."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    said = [authorization]
    if scheme.lower() == "basic":
        said.append(base64.b64decode(credentials).decode(errors="replace"))
    said += [f"{k}={v}" for k, v in request.params]
    said += [request.body.decode(errors="replace"), request.path]
    said += [f"{k}: {v}" for k, v in request.headers.items()]
    text = " ".join(said)
    error = {"message": text, "type": "OAuthException", "code": 1}
    body = {"error": error, "errors": [error], "title": text, "detail": text, "message": text}
    return json.dumps(body).encode()


def _check_network(network: str) -> str:
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; known: {sorted(NETWORKS)}")
    return network


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A started FakeUpstream, stopped after the test."""
    with FakeUpstream() as fake:
        yield fake
