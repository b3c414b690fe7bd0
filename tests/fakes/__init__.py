"""Per-network fakes for the fake upstream: one module per network, each defining `FAKE`.

A fake is pure: it gets the request and a way to read the counts the test set, and returns the
answer in the network's real format. The server in tests/fakeupstream.py finds every module here.
"""

from __future__ import annotations

import importlib
import itertools
import json
import pkgutil
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeRequest:
    """What the fake server received."""

    method: str
    path: str
    params: list[tuple[str, str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def param(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.params if k == name), default)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.params if k == name]


@dataclass(frozen=True)
class FakeResponse:
    """An answer in a network's format."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def json_answer(data: Any, status: int = 200) -> FakeResponse:
    return FakeResponse(status, json.dumps(data).encode())


# Reads the count the test set for (url); 0 when none was set.
CountOf = Callable[[str], int]


@dataclass(frozen=True)
class NetworkFake:
    """One network's paths (regular expressions, matched in full) and how it answers."""

    network: str
    paths: tuple[str, ...]
    answer: Callable[[FakeRequest, CountOf], FakeResponse]

    def serves(self, path: str) -> bool:
        return any(re.fullmatch(pattern, path) for pattern in self.paths)


class IssuedTokens:
    """The bearer tokens a fake's auth endpoint handed out, shared by the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self._serial = itertools.count(1)

    def next_serial(self) -> int:
        with self._lock:
            return next(self._serial)

    def add(self, token: str) -> None:
        with self._lock:
            self._issued.add(token)

    def known(self, authorization: str) -> bool:
        """Whether an Authorization header carries a token handed out (scheme case-insensitive)."""
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token in self._issued

    def revoke(self) -> None:
        """Forget every token, as a network does when it revokes them early."""
        with self._lock:
            self._issued.clear()


def discover() -> dict[str, NetworkFake]:
    """Every `FAKE` defined by a module of this package, by network name."""
    fakes: dict[str, NetworkFake] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        fake = getattr(module, "FAKE", None)
        if isinstance(fake, NetworkFake):
            fakes[fake.network] = fake
    return fakes
