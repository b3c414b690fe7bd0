"""Headless Chromium for the browser tests, and where they keep their screenshots.

Playwright's async API on a session loop: the sync API keeps its loop marked running in this
thread for as long as the browser is open, which breaks every async test that runs after it.
A module that uses `browser` imports it with `chromium` and marks its tests `loop_scope="session"`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def artifacts_dir() -> Path:
    """$FLARES_ARTIFACTS, else test-artifacts/ in the checkout; it exists once this returns."""
    given = os.environ.get("FLARES_ARTIFACTS")
    out = Path(given) if given else Path(__file__).resolve().parents[1] / "test-artifacts"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def chromium() -> Path:
    # A missing browser fails rather than skips: a skip would pass a CI that checks nothing.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found; install it with: apt-get install -y chromium")
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()
