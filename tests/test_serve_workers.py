"""`flares serve --workers 2`: two API processes answer on one port, and SIGTERM ends them all.

Which process answered is read from Linux's /proc: the process that holds the server's end of
the connection is the one that accepted it and answered on it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx

from aggregator.embedded import answers, socket_path
from tests.fakeupstream import FakeUpstream
from tests.service import Service, providers_env, wait_for

PAGE = "https://blog.example.com/2026/11/workers"
ADMIN_KEY = "workers-admin-k3y"
# Connections tried before concluding that one process answers them all: each goes to whichever
# process wins the race to accept it, so two idle processes share a handful between them.
ATTEMPTS = 200


def parent_of(pid: int) -> int | None:
    """The parent's pid, or None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields follow the last one.
    return int(stat.rsplit(")", 1)[1].split()[1])


def children_of(pid: int) -> set[int]:
    procs = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return {child for child in procs if parent_of(child) == pid}


def server_side_inode(port: int, peer_port: int) -> int:
    """The inode of the socket that accepted the connection from `peer_port` on `port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, peer = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == port and int(peer, 16) == peer_port:
            return int(fields[9])
    raise AssertionError(f"no server socket for the connection from port {peer_port}")


def holder(inode: int, pids: set[int]) -> int:
    """Which of the processes has the socket open."""
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"none of {sorted(pids)} holds socket {inode}")


def answering_process(port: int, pids: set[int]) -> int:
    """Ask /healthz on a new connection; the process that answered it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: flares\r\n\r\n")
        with sock.makefile("rb") as answer:
            assert answer.readline().startswith(b"HTTP/1.1 200")
        # The connection is still open (keep-alive): its server end is still held.
        return holder(server_side_inode(port, sock.getsockname()[1]), pids)


def test_two_processes_share_the_port_and_sigterm_ends_them_all(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    fake_upstream.set_count("hatena", PAGE, 7)
    data = tmp_path / "data"
    env = {
        "FLARES_ADMIN_KEY": ADMIN_KEY,
        "FLARES_DATA_DIR": str(data),
        "FLARES_SCHEDULE__TICK_SECONDS": "0.2",
        **providers_env(fake_upstream.base_url, ["hatena"]),
    }
    service = Service(env, tmp_path / "serve.log", "--workers", "2").start()
    assert service.proc is not None
    family = children_of(service.proc.pid)
    answered: set[int] = set()
    try:
        for _ in range(ATTEMPTS):
            answered.add(answering_process(service.port, family | {service.proc.pid}))
            if len(answered) == 2:
                break
        # The API processes poll too: a tracked page gets its count from one of them.
        created = httpx.post(
            service.base_url + "/api/v1/urls",
            json={"url": PAGE},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        )
        assert created.status_code == 201
        wait_for(
            lambda: service.get("/api/v1/counts", url=PAGE).json()["total"] == 7 or None,
            f"the count; the log:\n{service.output()}",
        )
    finally:
        code = service.stop()
    assert len(answered) == 2, f"every connection went to process {answered}"
    assert answered <= family, "the parent process answered instead of its children"
    assert code == 0, service.output()
    wait_for(
        lambda: not any(parent_of(pid) for pid in family) or None,
        f"the processes {sorted(family)} of `flares serve` to end",
    )
    assert not answers(socket_path(data)), "the embedded server outlived `flares serve`"
