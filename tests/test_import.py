"""`flares import`: exports of other plugins read line by line, then sent to a real service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from aggregator.importer import Row, UnreadableFile, read_counts
from aggregator.store import Store
from providers.registry import discover
from tests.service import Service, run_cli

KNOWN = {*discover(), "email"}
A = "https://blog.example.com/a"
B = "https://blog.example.com/b"
KEY = "import-key"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_rows_extra_columns_and_malformed_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "counts.csv",
        "url,network,count,note\n"
        f"{A},Google+,12,from 2017\n"
        f"{A},linkedin,83\n"
        "\n"
        f"{A},myspace,3,\n"
        f"{B},twitter,-3\n"
        f"ftp://example.com/,facebook,1\n"
        f'"{B}?utm_source=x",pinterest,"7"\n',
    )
    parsed = read_counts(path, KNOWN)
    assert parsed.rows == [
        Row(2, A, "googleplus", 12),
        Row(3, A, "linkedin", 83),
        Row(8, B, "pinterest", 7),
    ]
    assert [line for line, _ in parsed.problems] == [5, 6, 7]
    assert "myspace" in parsed.problems[0][1]
    assert "negative" in parsed.problems[1][1]
    assert "http" in parsed.problems[2][1]


def test_csv_with_a_column_per_network_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        f"URL,Title,_facebook_shares,Tweets,Pin It,_totes\n{A},Hello,5,,2,7\n{B},x\n",
        encoding="utf-8-sig",
    )
    parsed = read_counts(path, KNOWN)
    assert parsed.rows == [Row(2, A, "facebook", 5), Row(2, A, "pinterest", 2)]
    assert parsed.problems == [(3, "no count of a known network")]
    assert parsed.ignored == {"Title", "_totes"}


def test_json_both_shapes_with_the_line_each_object_starts_on(tmp_path: Path) -> None:
    text = (
        "[\n"
        f'  {{"url": "{A}", "facebook": 12, "tweets": "3", "plusone": 5.0, "total": 20}},\n'
        f'  {{"url": "{B}", "network": "email", "count": 4}},\n'
        "  {\n"
        f'    "url": "{B}",\n'
        '    "pinterest": "lots"\n'
        "  },\n"
        '  ["not", "an", "object"],\n'
        f'  {{"url": "{B}", "network": "hatena"}}\n'
        "]\n"
    )
    parsed = read_counts(write(tmp_path, "flare.json", text), KNOWN)
    assert parsed.rows == [
        Row(2, A, "facebook", 12),
        Row(2, A, "twitter", 3),
        Row(2, A, "googleplus", 5),
        Row(3, B, "email", 4),
    ]
    assert parsed.problems == [
        (4, "pinterest: the count 'lots' is not a whole number"),
        (8, "not an object"),
        (9, "no count"),
    ]
    assert parsed.ignored == {"total"}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[\n{"url": "x"},\n{"url": }\n]', "line 3: invalid JSON"),
        ('{"url": "x"}', "line 1: the JSON must be a list"),
        ("[\n{}\n{}]", "line 3: invalid JSON: expected ',' or ']'"),
        ("", "line 1: no header"),
    ],
)
def test_a_file_that_cannot_be_read_says_where(tmp_path: Path, text: str, where: str) -> None:
    name = "counts.csv" if not text else "counts.json"
    with pytest.raises(UnreadableFile, match=where):
        read_counts(write(tmp_path, name, text), KNOWN)


def cli_env(service: Service | None = None) -> dict[str, str]:
    """The settings the service and the CLI share; the CLI also needs the service's port."""
    port = {"FLARES_PORT": str(service.port)} if service else {}
    return {"FLARES_ADMIN_KEY": KEY, "FLARES_ALLOWED_DOMAINS": "127.0.0.1", **port}


@pytest.fixture
def service(redis_url: str, redis: Redis, tmp_path: Path) -> Iterator[Service]:
    """`flares serve` on the test's Redis, with an admin key, not polling any network."""
    env = {**cli_env(), "FLARES_REDIS_URL": redis_url, "FLARES_DATA_DIR": str(tmp_path / "data")}
    running = Service(env, tmp_path / "serve.log", "--no-scheduler").start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.output()


async def test_import_csv_reports_lines_and_reimport_changes_nothing(
    service: Service, store: Store, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "counts.csv",
        f"url,network,count\n{A},googleplus,12\n{A},linkedin,83\n{A},twitter,many\n{B},pin,4\n",
    )
    keyless = run_cli(["import", str(path)], {"FLARES_PORT": str(service.port)})
    assert keyless.returncode == 1
    assert "HTTP 401" in keyless.stderr
    assert await store.get(A) is None

    first = run_cli(["import", str(path)], cli_env(service))
    assert first.returncode == 1, first.stderr
    assert "imported 3, unchanged 0, skipped 1" in first.stdout
    assert "line 4: the count 'many' is not a whole number" in first.stderr
    # The progress bar, as it ends.
    assert "importing" in first.stderr
    assert "3/3" in first.stderr
    record = await store.get(A)
    assert record is not None
    assert record.networks["googleplus"].count == 12
    assert record.networks["linkedin"].baseline == 83
    assert await store.due_at(B) is not None

    again = run_cli(["import", str(path)], cli_env(service))
    assert "imported 0, unchanged 3, skipped 1" in again.stdout
    assert await store.get(A) == record
    actions = [e.action for e in await store.audit_log(10)]
    assert actions == ["baseline.import", "baseline.import"]


async def test_import_json_export_with_a_key_per_network(
    service: Service, store: Store, tmp_path: Path
) -> None:
    export = [
        {"url": A, "title": "A post", "facebook": 58, "google_plus": 9, "tweets": 110},
        {"url": B, "network": "email", "count": 3},
    ]
    path = write(tmp_path, "flare.json", json.dumps(export, indent=2))
    result = run_cli(["import", str(path)], cli_env(service))
    assert result.returncode == 0, result.stderr
    assert "imported 4, unchanged 0, skipped 0" in result.stdout
    assert "ignored columns that name no network: title" in result.stdout
    record = await store.get(A)
    assert record is not None
    assert {n: net.baseline for n, net in record.networks.items()} == {
        "facebook": 58,
        "googleplus": 9,
        "twitter": 110,
    }


def test_an_unreadable_file_imports_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "counts.json", "[\n{oops}\n]")
    # No service: the file is refused before anything is sent.
    result = run_cli(["import", str(path)], {"FLARES_PORT": "9"})
    assert result.returncode == 2
    assert "line 2: invalid JSON" in result.stderr
