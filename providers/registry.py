"""Discovery of providers through the `flares.providers` entry-point group."""

from __future__ import annotations

import logging
import re
from importlib.metadata import entry_points

from providers.base import Provider

GROUP = "flares.providers"
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
log = logging.getLogger(__name__)


def discover() -> dict[str, type[Provider]]:
    """Every installed provider by name; a plugin that fails to load is logged and skipped."""
    found: dict[str, type[Provider]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception:
            log.exception("provider plugin %r failed to load; skipping it", ep.value)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            log.error("entry point %r is not a Provider subclass; skipping it", ep.value)
            continue
        if not NAME.fullmatch(getattr(cls, "name", "")):
            # The name is part of settings variables and Redis field names.
            log.error("provider %r needs a name of lower-case letters, digits, _", ep.value)
            continue
        if cls.name in found:
            log.error("two providers are named %r; keeping %r", cls.name, found[cls.name])
            continue
        found[cls.name] = cls
    return dict(sorted(found.items()))
