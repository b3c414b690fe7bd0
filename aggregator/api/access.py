"""Who may write: the holder of the admin key, given plain or as its SHA-256 in the settings.

Without a configured key every write is refused, unless `flares serve --insecure-open` opened
them on purpose (an argument only: no variable or file can open a public instance by mistake).
"""

from __future__ import annotations

import hashlib
import hmac

from aggregator.api.errors import ApiError
from aggregator.api.models import ErrorBody
from aggregator.config import Settings

HASH_SCHEME = "sha256:"
AUTHENTICATE = {"WWW-Authenticate": "Bearer"}
WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "The admin key is missing or wrong"},
    403: {
        "model": ErrorBody,
        "description": "No admin key is configured and writes were not opened (--insecure-open)",
    },
}


def key_hash(key: str) -> str:
    """The form FLARES_ADMIN_KEY_HASH takes: `sha256:` and the key's SHA-256 in hex."""
    return HASH_SCHEME + hashlib.sha256(key.encode()).hexdigest()


def key_configured(settings: Settings) -> bool:
    return settings.admin_key is not None or settings.admin_key_hash is not None


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def is_admin(settings: Settings, authorization: str | None) -> bool:
    """Whether the request carries the admin key; every comparison takes constant time."""
    token = bearer_token(authorization)
    if token is None:
        return False
    matched = False
    if settings.admin_key is not None:
        key = settings.admin_key.get_secret_value().encode()
        matched |= hmac.compare_digest(token.encode(), key)
    if settings.admin_key_hash is not None:
        digest = settings.admin_key_hash.get_secret_value().encode()
        matched |= hmac.compare_digest(key_hash(token).encode(), digest)
    return matched


def check_write(settings: Settings, authorization: str | None, insecure_open: bool) -> bool:
    """Allow a write or raise why not; returns whether the caller holds the admin key."""
    if not key_configured(settings):
        if insecure_open:
            return False
        raise ApiError(
            403,
            "writes are closed",
            "no admin key is configured: set FLARES_ADMIN_KEY (or FLARES_ADMIN_KEY_HASH="
            "sha256:<hex>) and send Authorization: Bearer <key>; `flares serve --insecure-open` "
            "lets anyone who can reach the port write",
        )
    if not is_admin(settings, authorization):
        raise ApiError(
            401, "admin key required", "send Authorization: Bearer <admin key>", AUTHENTICATE
        )
    return True


def key_fingerprint(settings: Settings) -> str | None:
    """A short fingerprint of the configured key for the audit log, the same whether the key is
    configured plain or as its hash; the key itself is never stored."""
    if settings.admin_key is not None:
        hashed = key_hash(settings.admin_key.get_secret_value())
    elif settings.admin_key_hash is not None:
        hashed = settings.admin_key_hash.get_secret_value()
    else:
        return None
    return hashlib.sha256(b"flares-audit\x00" + hashed.encode()).hexdigest()[:12]
