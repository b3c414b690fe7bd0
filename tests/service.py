"""Run `flares` as real processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

from providers.registry import discover

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def flares_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The process environment without the developer's FLARES_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLARES_")}
    env.update(extra)
    return env


def providers_env(base_url: str, enabled: Collection[str]) -> dict[str, str]:
    """Every installed provider pointed at `base_url`; only those in `enabled` switched on."""
    env: dict[str, str] = {}
    for name in discover():
        env[f"FLARES_PROVIDERS__{name.upper()}__BASE_URL"] = base_url
        env[f"FLARES_PROVIDERS__{name.upper()}__ENABLED"] = str(name in enabled).lower()
    return env


def run_cli(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        env=flares_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll until `probe` returns something other than None; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class FlaresProcess:
    """One `flares` subcommand in its own process, logging to a file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.args = args
        self.env = flares_env(env)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FlaresProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self) -> int:
        """SIGTERM and wait, as a service manager would; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Service(FlaresProcess):
    """`flares serve` on a free port."""

    def __init__(self, env: Mapping[str, str], log: Path, *extra_args: str) -> None:
        self.port = free_port()
        super().__init__(["serve", "--port", str(self.port), *extra_args], env, log)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        super().start()
        wait_for(self._healthy, f"flares serve to answer; its log:\n{self.output()}")
        return self

    def _healthy(self) -> bool | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"flares serve exited early:\n{self.output()}")
        try:
            return httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200 or None
        except httpx.HTTPError:
            return None

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(self.base_url + path, params=params, timeout=10)
