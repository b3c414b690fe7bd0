"""Provider discovery through entry points, including a third party's own distribution."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from providers.registry import discover

BUILT_IN = {
    "facebook", "twitter", "pinterest", "linkedin", "buffer", "googleplus", "reddit",
    "hackernews", "hatena", "vk", "ok", "tumblr", "bluesky",
}  # fmt: skip

PLUGIN = '''
"""A network flares does not ship: counts come from a JSON object {"n": N}."""
from collections.abc import Mapping, Sequence
from typing import ClassVar

from providers.base import NetworkStatus, Provider, ProviderRequest, count_value, json_body, rebase


class Example(Provider):
    name: ClassVar[str] = "examplenet"
    label: ClassVar[str] = "Example Net"
    status: ClassVar[NetworkStatus] = NetworkStatus.LIVE
    endpoint: ClassVar[str] = "https://api.example.net/count"

    @classmethod
    def build_request(
        cls, urls: Sequence[str], base_url: str | None, config: Mapping[str, str]
    ) -> ProviderRequest:
        return ProviderRequest(rebase(cls.endpoint, base_url), params=[("url", urls[0])])

    @classmethod
    def parse(cls, urls: Sequence[str], body: bytes) -> dict[str, int]:
        return {urls[0]: count_value(cls.name, json_body(cls.name, body)["n"], "n")}


class Broken(Example):
    name: ClassVar[str] = "Bad:Name"
'''


def install_plugin(site: Path) -> None:
    """Lay out an installed distribution the way pip does: the module and its dist-info."""
    (site / "flares_examplenet.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "flares_examplenet-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flares-examplenet\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[flares.providers]\n"
        "examplenet = flares_examplenet:Example\n"
        "badname = flares_examplenet:Broken\n"
        "missing = flares_examplenet:Nowhere\n"
    )


def test_built_in_providers_are_registered_like_plugins() -> None:
    assert set(discover()) == BUILT_IN


def test_third_party_distribution_is_picked_up(tmp_path: Path) -> None:
    install_plugin(tmp_path)
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from providers.registry import discover\n"
        "found = discover()\n"
        "cls = found['examplenet']\n"
        "print(json.dumps({'names': sorted(found), 'count': cls.parse(['u'], b'{\"n\": 5}')}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["names"] == sorted(BUILT_IN | {"examplenet"})
    assert shown["count"] == {"u": 5}
    assert "failed to load" in result.stderr, "a plugin that cannot load is reported"
    assert "lower-case letters" in result.stderr, "a bad name is refused and reported"
