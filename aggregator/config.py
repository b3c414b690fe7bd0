"""Settings: env vars FLARES_* (nested with __), optionally layered over a TOML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from aggregator.store import HISTORY_DAYS

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
    # Days of daily counts kept per network of a page, in aggregator/store.py's history.
    history_days: int = Field(default=HISTORY_DAYS, ge=1, le=3_660)

    @field_validator("admin_key", "redis_url", "share_salt", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

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
        found += [s.get_secret_value() for s in (self.admin_key, self.share_salt) if s is not None]
        if self.redis_url and (password := urlsplit(self.redis_url).password):
            found.append(password)
        return found

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
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def public_view(settings: Settings) -> dict[str, Any]:
    """The effective configuration as JSON-ready data with every secret masked."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    if settings.redis_url:
        data["redis_url"] = mask_url(settings.redis_url)
    return data
