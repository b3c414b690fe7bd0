"""The Jinja2 set-up every HTML page of flares shares."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader


def package_templates(package: str) -> Environment:
    """An environment over the package's templates/ folder; autoescape, so no value can
    inject markup."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
