"""Settings: env vars FLARES_* (nested with __), optionally layered over a TOML file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from aggregator.logs import LogFormat
from aggregator.store import HISTORY_DAYS
from aggregator.store import MAX_COUNT as STORED_MAX
from providers.base import MAX_COUNT as PLAUSIBLE_COUNT

SECRET_FIELDS = (
    "app_id",
    "app_secret",
    "bearer_token",
    "client_id",
    "client_secret",
    "handle",
    "app_password",
)
OPTION_FIELDS = ("user_agent", "mode", "graph_version")
# Where a network's served count comes from: its API, flares' own share clicks, or the larger.
Source = Literal["api", "clicks", "max"]


class ConfigError(Exception):
    """The configuration cannot be loaded; the message says why."""


class ProviderSettings(BaseModel):
    """Per-provider overrides; `enabled=None` keeps the provider's own default."""

    model_config = ConfigDict(frozen=True)

    enabled: bool | None = None
    base_url: str | None = None
    timeout: float = Field(default=10.0, gt=0, le=120)
    app_id: SecretStr | None = None
    app_secret: SecretStr | None = None
    bearer_token: SecretStr | None = None
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    handle: SecretStr | None = None
    app_password: SecretStr | None = None
    user_agent: str | None = None
    mode: str | None = None
    graph_version: str | None = None
    # Unset: the provider's defaults, taken from the network's documented limits.
    budget_requests: int | None = Field(default=None, ge=1)
    budget_window: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, ge=1)
    # Unset: the default of aggregator/sources.py (clicks where the API gives no count).
    source: Source | None = None

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "base_url must be an absolute http(s) URL such as http://127.0.0.1:9000"
            )
        return value

    @field_validator(*SECRET_FIELDS, *OPTION_FIELDS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    def values(self) -> dict[str, str]:
        """The provider's credentials and options that are set, in clear, for the executor only."""
        found: dict[str, str] = {}
        for name in SECRET_FIELDS:
            secret: SecretStr | None = getattr(self, name)
            if secret is not None:
                found[name] = secret.get_secret_value()
        for name in OPTION_FIELDS:
            option: str | None = getattr(self, name)
            if option is not None:
                found[name] = option
        return found

    def secrets(self) -> list[str]:
        """The secret values that are set: what must never appear in any output."""
        return [s.get_secret_value() for n in SECRET_FIELDS if (s := getattr(self, n)) is not None]


class ScheduleSettings(BaseModel):
    """Tick period and refresh intervals (seconds), by a URL's age since it was first tracked."""

    tick_seconds: float = Field(default=2.0, gt=0)
    claim_size: int = Field(default=200, ge=1, le=10_000)
    lease_seconds: float = Field(default=300.0, gt=0)
    fresh_age: float = Field(default=86_400.0, gt=0)
    fresh_interval: float = Field(default=1_800.0, gt=0)
    recent_age: float = Field(default=432_000.0, gt=0)
    recent_interval: float = Field(default=21_600.0, gt=0)
    old_interval: float = Field(default=432_000.0, gt=0)
    retry_interval: float = Field(default=300.0, gt=0)
    # Spread refreshes by +/- this share of the interval, so a bulk import does not stay in step.
    jitter: float = Field(default=0.1, ge=0, le=0.5)
    # A URL whose count rose at its last fetch comes back after this share of its interval...
    moved_factor: float = Field(default=0.5, gt=0, le=1)
    # ...but never sooner than this (Facebook allows 10 calls per URL per hour).
    min_interval: float = Field(default=600.0, gt=0)
    concurrency: int = Field(default=8, ge=1, le=1_000)
    # Retries of a request after a transient error (connection, timeout, 5xx), with backoff.
    retries: int = Field(default=2, ge=0, le=10)
    backoff: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=8.0, gt=0)


class HealthSettings(BaseModel):
    """When a provider counts as failing."""

    failing_after: int = Field(default=3, ge=1)
    # The circuit breaker opens after this many failed requests in a row, for the cool-down.
    breaker_after: int = Field(default=5, ge=1)
    breaker_cooldown: float = Field(default=300.0, gt=0)
    # Degraded: more than this share of the last hour's requests failed (at least `min_requests`).
    degraded_share: float = Field(default=0.2, gt=0, le=1)
    min_requests: int = Field(default=5, ge=1)
    # Suspect: of the URLs that had a count and were answered for in the last hour (at least
    # `min_requests`), this share or more came back 0.
    suspect_zero_share: float = Field(default=0.5, gt=0, le=1)


class LimitSettings(BaseModel):
    """What an anonymous read may make flares do, and how large a request body may be."""

    # URLs that reads (tracking on first read) may add a minute, per client and per domain.
    new_per_client: int = Field(default=30, ge=0)
    new_per_domain: int = Field(default=300, ge=0)
    # URLs that reads may add on one domain in all, and tracked URLs above which they add none.
    max_per_domain: int = Field(default=100_000, ge=0)
    max_total: int = Field(default=1_000_000, ge=0)
    # Room for a bulk read of 1,000 URLs of the longest kind (4 KB each, as the models allow).
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class SiteSettings(BaseModel):
    """Which other spellings of a site's pages are fetched from networks that count each
    spelling apart; each is one more request per page and network, so all are off by default."""

    model_config = ConfigDict(frozen=True)

    scheme: bool = False
    www: bool = False
    slash: bool = False


# Shared by every provider without settings of its own: read on every count a page shows, and
# frozen, so that sharing it is safe.
DEFAULT_PROVIDER = ProviderSettings()


class Settings(BaseSettings):
    """The effective configuration of one flares process."""

    # An empty variable means "not set": an empty admin key must never match an empty token.
    model_config = SettingsConfigDict(
        env_prefix="FLARES_", env_nested_delimiter="__", env_ignore_empty=True, extra="ignore"
    )

    redis_url: str | None = None
    data_dir: Path = Path("flares-data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    admin_key: SecretStr | None = None
    # The key as `sha256:<hex>`, so that the configuration need not hold the key itself.
    admin_key_hash: SecretStr | None = None
    allowed_domains: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Keys the hash of a share click's visitor; unset: a random salt per day, kept in Redis.
    share_salt: SecretStr | None = None
    # Proxies in front of flares whose X-Forwarded-For entry names the client (0: the socket peer).
    trusted_proxies: int = Field(default=0, ge=0, le=16)
    # Query parameters dropped from page URLs, besides utm_* and the well-known click ids.
    tracking_params: Annotated[list[str], NoDecode] = Field(default_factory=list)
    user_agent: str = "flares/0.1 (self-hosted share-count aggregator)"
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    # Days of daily counts kept per network of a page, in aggregator/store.py's history.
    history_days: int = Field(default=HISTORY_DAYS, ge=1, le=3_660)
    # Log records as JSON lines, or as text for a person; "auto": text on a terminal only.
    log_format: LogFormat = "auto"
    # Pages whose last served counts the API keeps in memory to answer with while Redis is away
    # (about 1 KB each; 0 turns the cache off and such reads answer 503).
    last_served: int = Field(default=4_096, ge=0, le=1_000_000)
    # The largest count believed from a network: above it (or below 0) an answer is garbage, a
    # parse failure that changes no number. No page has been shared a trillion times (there are
    # eight billion people), while a broken answer easily says 10^15; Redis keeps 2^53 exactly.
    max_count: int = Field(default=PLAUSIBLE_COUNT, ge=1, le=STORED_MAX)
    # URL variants fetched for every site, and per domain (with its subdomains) what differs.
    variants: SiteSettings = Field(default_factory=SiteSettings)
    sites: dict[str, SiteSettings] = Field(default_factory=dict)

    @field_validator("admin_key", "admin_key_hash", "redis_url", "share_salt", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("admin_key_hash", mode="before")
    @classmethod
    def _sha256_hex(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            scheme, _, digest = value.strip().partition(":")
            if scheme.lower() != "sha256" or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise ValueError("admin_key_hash must be sha256:<64 hex digits>")
            return f"sha256:{digest.lower()}"
        return value

    @field_validator("sites", mode="before")
    @classmethod
    def _domain_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(d).strip().lower().strip("."): v for d, v in value.items()}
        return value

    @field_validator("allowed_domains", "tracking_params", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [str(d).strip().lower().strip(".") for d in value if str(d).strip()]
        return value

    def secret_values(self) -> list[str]:
        """Every secret in this configuration: what no message, log or page may show."""
        found = [s for conf in self.providers.values() for s in conf.secrets()]
        keys = (self.admin_key, self.admin_key_hash, self.share_salt)
        found += [s.get_secret_value() for s in keys if s is not None]
        if self.redis_url and (password := urlsplit(self.redis_url).password):
            # The URL holds it percent-encoded; Redis, and any error quoting it, the decoded one.
            found.append(unquote(password))
        return found

    def site(self, host: str) -> SiteSettings:
        """The variant settings of a host: those of the most specific domain in `sites` that
        is the host or a parent of it, each field given there over `variants`."""
        matches = [d for d in self.sites if host == d or host.endswith("." + d)]
        if not matches:
            return self.variants
        override = self.sites[max(matches, key=len)]
        return self.variants.model_copy(update=override.model_dump(exclude_unset=True))

    def provider(self, name: str) -> ProviderSettings:
        """The settings of one provider, defaults when none are given."""
        return self.providers.get(name) or DEFAULT_PROVIDER

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file so one deployment file serves many processes.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config_file: Path | None = None) -> Settings:
    """Settings from the environment over the TOML file named by the argument or FLARES_CONFIG."""
    path = config_file or (
        Path(os.environ["FLARES_CONFIG"]) if os.environ.get("FLARES_CONFIG") else None
    )
    if path is None:
        return Settings()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")

    class FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    return FromFile()


def mask_url(url: str) -> str:
    """The URL with any password replaced, for display."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # The hosts as written: a cluster URL lists several host:port pairs.
    netloc = f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def public_view(settings: Settings) -> dict[str, Any]:
    """The effective configuration as JSON-ready data with every secret masked."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    if settings.redis_url:
        data["redis_url"] = mask_url(settings.redis_url)
    return data
